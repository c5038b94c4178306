"""Core subcommands of ``aisp``: ``baseline update`` and ``report merge``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pytest_aisp.baseline import baseline_from_findings, load_baseline
from pytest_aisp.findings import AispError
from pytest_aisp.reporters.sarif import merge_sarif
from pytest_aisp.reporters.session import JSON_REPORT_NAME, read_json_report

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
    """Accept every finding of the last report into the baseline (existing reasons and expiries kept)."""
    entries = read_json_report(args.report_dir / JSON_REPORT_NAME).entries
    previous = load_baseline(args.baseline) if args.baseline.exists() else None
    pairs = [(e.nodeid or "*", e.finding) for e in entries]
    baseline = baseline_from_findings(pairs, reason=args.reason, previous=previous)
    baseline.write(args.baseline)
    print(f"aisp: wrote {len(baseline.entries)} accepted findings to {args.baseline}", file=sys.stderr)
    return 0


def report_merge(args: argparse.Namespace) -> int:
    """Merge SARIF logs of CI shards into one file."""
    documents = []
    for path in args.inputs:
        try:
            documents.append(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise AispError(f"{path} does not exist") from None
        except (OSError, ValueError) as exc:
            raise AispError(f"{path} is not a JSON SARIF file: {exc}") from None
    merged = merge_sarif(documents)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(merged, indent=2) + "\n", encoding="utf-8")
    count = len(merged["runs"][0]["results"])
    print(f"aisp: merged {len(documents)} SARIF files ({count} results) into {args.output}", file=sys.stderr)
    return 0
