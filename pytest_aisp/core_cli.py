"""Core subcommands of ``aisp``: ``baseline update`` and ``report merge``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pytest_aisp.baseline import baseline_from_findings, load_baseline
from pytest_aisp.findings import AispError
from pytest_aisp.reporters.findings_json import JSON_REPORT_NAME, load_json_file, read_json_report, write_text_file
from pytest_aisp.reporters.sarif import merge_sarif, sarif_text

DEFAULT_BASELINE = Path("aisp-baseline.json")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``baseline`` and ``report`` to the ``aisp`` command."""
    baseline = subparsers.add_parser("baseline", help="accept current findings so only new ones fail")
    baseline_sub = baseline.add_subparsers(dest="baseline_command", metavar="ACTION", required=True)
    update = baseline_sub.add_parser(
        "update", help="write the findings of a --aisp-report-dir run into the baseline file"
    )
    update.add_argument("--report-dir", type=Path, default=Path("reports"),
                        help=f"folder holding {JSON_REPORT_NAME} (default: reports)")
    update.add_argument("--baseline", type=Path, default=DEFAULT_BASELINE,
                        help=f"baseline file to write (default: {DEFAULT_BASELINE})")
    update.add_argument("--reason", default="accepted by aisp baseline update",
                        help="reason stored with new entries (existing entries keep theirs)")
    update.set_defaults(func=baseline_update)

    report = subparsers.add_parser("report", help="work with aisp reports")
    report_sub = report.add_subparsers(dest="report_command", metavar="ACTION", required=True)
    merge = report_sub.add_parser("merge", help="merge SARIF files of several CI shards into one")
    merge.add_argument("output", type=Path, help="SARIF file to write")
    merge.add_argument("inputs", type=Path, nargs="+", help="SARIF files to merge")
    merge.set_defaults(func=report_merge)


def baseline_update(args: argparse.Namespace) -> int:
    """Accept every finding of the last report into the baseline (existing reasons and expiries kept).

    Expected findings (xfailed and negative tests) are never accepted: their tests must keep failing
    for the xfail to hold, or keep catching the failure.
    """
    report_path = args.report_dir / JSON_REPORT_NAME
    if args.report_dir.exists() and not args.report_dir.is_dir():
        raise AispError(f"--report-dir {args.report_dir} is a file; give the folder that holds {JSON_REPORT_NAME}")
    entries = read_json_report(report_path).entries
    previous = load_baseline(args.baseline) if args.baseline.exists() else None
    if args.baseline.is_dir():
        raise AispError(f"--baseline {args.baseline} is a directory; give the baseline file's name")
    accepted = [e for e in entries if not e.is_expected]
    pairs = [(e.nodeid or "*", e.finding) for e in accepted]
    baseline = baseline_from_findings(pairs, reason=args.reason, previous=previous)
    baseline.write(args.baseline)
    skipped = len(entries) - len(accepted)
    note = f"; {skipped} expected findings (xfailed or negative tests) left out" if skipped else ""
    print(f"aisp: wrote {len(baseline.entries)} accepted findings to {args.baseline}{note}", file=sys.stderr)
    return 0


def report_merge(args: argparse.Namespace) -> int:
    """Merge SARIF logs of CI shards into one file."""
    if args.output.is_dir():
        raise AispError(f"the merged SARIF file {args.output} is a directory; give a file name")
    documents = [load_json_file(path, what="SARIF file") for path in args.inputs]
    merged = merge_sarif(documents, names=[str(p) for p in args.inputs])
    write_text_file(args.output, sarif_text(merged), what="the merged SARIF file")
    count = len(merged["runs"][0]["results"])
    print(f"aisp: merged {len(documents)} SARIF files ({count} results) into {args.output}", file=sys.stderr)
    return 0
