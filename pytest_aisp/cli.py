"""The ``aisp`` command: every check without pytest.

Exit codes: 0 nothing at or above ``--fail-on``; 1 findings; 2 usage or infrastructure error.
Errors print as one line on stderr; ``--debug`` shows the traceback.

Module subcommands live beside their engines: ``pytest_aisp/<module>/cli.py`` defines
``register(subparsers)``, adding parsers whose ``func(args) -> int`` does the work.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Sequence

from pytest_aisp import __version__
from pytest_aisp.config import current_settings_or_none, set_current_settings
from pytest_aisp.findings import AispError, escape_control

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a reader that closed the pipe


class _Parser(argparse.ArgumentParser):
    """argparse that exits 2 with one line, as the rest of the command does."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_ERROR, f"aisp: error: {message} (see `{self.prog} --help`)\n")


# Each top-level command, the module whose ``register(subparsers)`` adds it, and its one-line help. Only the
# module of the command being run is imported, so ``aisp scan`` starts without numpy, torch or pytest.
COMMANDS: dict[str, tuple[str, str]] = {
    "scan": ("pytest_aisp.scan.cli", "scan model files for unsafe code and payloads, without running them"),
    "dataset-screen": ("pytest_aisp.robust.cli", "screen a labelled dataset (.npz) for flipped labels, "
                                                 "conflicts and outliers"),
    "membership": ("pytest_aisp.robust.cli", "membership-inference attacks on a model file or endpoint"),
    "llm": ("pytest_aisp.llm.cli", "probe an LLM endpoint for injection, jailbreaks and leaks"),
    "augment": ("pytest_aisp.nlp.cli", "write label-preserving augmented copies of a CSV file's text column"),
    "multimodal": ("pytest_aisp.multimodal.cli", "image / audio / video / text perturbations"),
    "manifest": ("pytest_aisp.supply.cli", "create, sign and verify artifact manifests"),
    "bom": ("pytest_aisp.supply.cli", "write a CycloneDX 1.6 ML-BOM of models, datasets and files"),
    "pins": ("pytest_aisp.supply.cli", "check that dependencies are pinned (and hashed)"),
    "provenance": ("pytest_aisp.supply.cli", "record and verify in-toto / SLSA build provenance"),
    "monitor": ("pytest_aisp.monitor.cli", "runtime monitoring: fit a reference, replay logs, sidecar"),
    "history": ("pytest_aisp.dashboard.cli", "the run history the dashboard reads"),
    "dashboard": ("pytest_aisp.dashboard.cli", "serve the security dashboard"),
    "baseline": ("pytest_aisp.core_cli", "accept current findings so only new ones fail"),
    "report": ("pytest_aisp.core_cli", "work with aisp reports"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``aisp`` parser; only ``command``'s module is imported (every module when None is not enough:
    pass ``"*"`` to register them all, as the consistency test does)."""
    parser = _Parser(prog="aisp", description="AI security checks: scan, robustness, LLM, supply chain, monitor.")
    parser.add_argument("--version", action="version", version=f"pytest-aisp {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    wanted = {module for name, (module, _) in COMMANDS.items() if command in (name, "*")}
    for name, (module, help_text) in COMMANDS.items():
        if module not in wanted:
            subparsers.add_parser(name, help=help_text, add_help=False)
    for module in dict.fromkeys(m for m, _ in COMMANDS.values() if m in wanted):
        importlib.import_module(module).register(subparsers)
    return parser


def _command_of(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv`` (the first word that is not an option of ``aisp`` itself)."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``aisp`` command; return its exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    previous = current_settings_or_none()
    try:
        return _run(argv)
    finally:
        set_current_settings(previous)  # a subcommand installs its own; an embedding process keeps its settings


def _run(argv: list[str]) -> int:
    parser = build_parser(_command_of(argv))
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
    except BrokenPipeError:  # the reader went away (`aisp llm list | head`): stop quietly, as `cat` does
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except Exception as exc:  # a bug, not a finding: still one line unless --debug
        if args.debug:
            traceback.print_exc()
        print(f"aisp: internal error: {type(exc).__name__}: {escape_control(str(exc))} "
              "(rerun with --debug for details)", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
