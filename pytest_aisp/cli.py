"""The ``aisp`` command: every check without pytest.

Exit codes: 0 nothing at or above ``--fail-on``; 1 findings; 2 usage or infrastructure error.
Errors print as one line on stderr; ``--debug`` shows the traceback.

Module subcommands live beside their engines: ``pytest_aisp/<module>/cli.py`` defines
``register(subparsers)``, adding parsers whose ``func(args) -> int`` does the work.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from collections.abc import Sequence

from pytest_aisp import MODULES, __version__
from pytest_aisp.findings import AispError, escape_control

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse that exits 2 with one line, as the rest of the command does."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_ERROR, f"aisp: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="aisp", description="AI security checks: scan, robustness, LLM, supply chain, monitor.")
    parser.add_argument("--version", action="version", version=f"pytest-aisp {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    from pytest_aisp import core_cli

    core_cli.register(subparsers)
    for module_name in MODULES:
        try:
            module = importlib.import_module(f"pytest_aisp.{module_name}.cli")
        except ModuleNotFoundError as exc:
            if exc.name == f"pytest_aisp.{module_name}.cli":
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``aisp`` command; return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_ERROR
    try:
        return int(args.func(args))
    except AispError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"aisp: error: {escape_control(str(exc))}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("aisp: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not a finding: still one line unless --debug
        if args.debug:
            traceback.print_exc()
        print(f"aisp: internal error: {type(exc).__name__}: {escape_control(str(exc))} "
              "(rerun with --debug for details)", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
