"""Core subcommands of ``aisp``: ``baseline update`` and ``report merge`` (filled in next)."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the core subcommands."""
