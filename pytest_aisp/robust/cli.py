"""``aisp`` subcommands of the robust module."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the robust module's subcommands to the ``aisp`` command."""
    from pytest_aisp.robust import poison_cli

    poison_cli.register(subparsers)
