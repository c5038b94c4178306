"""``aisp augment``: stream a CSV file and write augmented copies of its text column."""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path
from typing import Any

from pytest_aisp.findings import AispError

PROGRESS_EVERY_S = 0.5


def register(subparsers: Any) -> None:
    """Add the NLP module's subcommands to the ``aisp`` command."""
    parser = subparsers.add_parser(
        "augment",
        help="write label-preserving augmented copies of a CSV file's text column",
        description="Read --in row by row and write each row followed by --n augmented copies "
        "(other columns, such as labels, are copied unchanged) to --out.",
    )
    parser.add_argument("--in", dest="input", required=True, type=Path, help="input CSV file (with a header)")
    parser.add_argument("--text-column", required=True, help="name of the column holding the text")
    parser.add_argument("--out", required=True, type=Path, help="output CSV file")
    parser.add_argument(
        "--recipe",
        default="typos,synonyms,homoglyphs",
        help="comma-separated augmentations: typos, synonyms, homoglyphs, deepwordbug, invisible",
    )
    parser.add_argument("--n", type=int, default=4, help="copies per row (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--words-fraction",
        type=float,
        default=0.15,
        help="fraction of a text's non-stop words changed per copy (default 0.15)",
    )
    parser.add_argument(
        "--no-original", action="store_true", help="write only the copies, not the input rows"
    )
    parser.add_argument(
        "--wordnet", default=None,
        help="folder with a full WordNet 3.0 database (default: the packaged WordNet 3.0 table)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    parser.set_defaults(func=augment_command)


def augment_command(args: argparse.Namespace) -> int:
    """Stream ``args.input`` to ``args.out`` (written to a temporary file beside it, renamed at the end); return 0."""
    from pytest_aisp.nlp.augment import _checked_options

    if not args.input.is_file():
        raise AispError(f"--in {args.input}: no such file")
    if args.out.exists() and args.out.resolve() == args.input.resolve():
        raise AispError(f"--out {args.out} is the input file; write the augmented copies to another file")
    if not args.out.parent.is_dir():
        raise AispError(f"--out {args.out}: the folder {args.out.parent} does not exist; create it first")
    with open(args.input, newline="", encoding="utf-8") as source:
        fieldnames = csv.DictReader(source).fieldnames
    if not fieldnames or args.text_column not in fieldnames:
        raise AispError(
            f"--text-column {args.text_column!r} is not a column of {args.input}; "
            f"columns: {', '.join(fieldnames or [])}"
        )
    names = _checked_options(args.recipe, args.n, args.words_fraction, args.wordnet)
    partial = args.out.with_name(f".{args.out.name}.partial")
    try:
        rows, copies, seconds = _augment_rows(args, names, partial)
        partial.replace(args.out)
    finally:
        partial.unlink(missing_ok=True)
    if not args.quiet:
        _progress(rows, copies, seconds, final=True)
    return 0


def _augment_rows(args: argparse.Namespace, names: Any, target: Path) -> tuple[int, int, float]:
    from pytest_aisp.nlp.augment import augment_one

    rows = copies = 0
    started = last = time.monotonic()
    with open(args.input, newline="", encoding="utf-8") as source, \
            open(target, "w", newline="", encoding="utf-8") as sink:
        reader = csv.DictReader(source)
        writer = csv.DictWriter(sink, fieldnames=[*(reader.fieldnames or []), "aisp_source_row"])
        writer.writeheader()
        try:
            for row in reader:
                text = row[args.text_column] or ""
                if not args.no_original:
                    writer.writerow({**row, "aisp_source_row": rows})
                for copy in augment_one(text, recipe=names, n=args.n, seed=args.seed,
                                        words_fraction=args.words_fraction, wordnet_path=args.wordnet):
                    writer.writerow({**row, args.text_column: copy, "aisp_source_row": rows})
                    copies += 1
                rows += 1
                now = time.monotonic()
                if not args.quiet and now - last >= PROGRESS_EVERY_S:
                    _progress(rows, copies, now - started, final=False)
                    last = now
        except (csv.Error, UnicodeDecodeError) as exc:
            raise AispError(f"--in {args.input}: row {rows + 1} is not readable CSV ({exc}); nothing was written "
                            f"to {args.out}") from None
    return rows, copies, time.monotonic() - started


def _progress(rows: int, copies: int, seconds: float, *, final: bool) -> None:
    rate = rows / seconds if seconds > 0 else 0.0
    line = f"augment: {rows} rows, {copies} copies, {rate:.0f} rows/s"
    if sys.stderr.isatty():
        sys.stderr.write("\r" + line + ("\n" if final else ""))
    else:
        sys.stderr.write(line + "\n")
    sys.stderr.flush()
