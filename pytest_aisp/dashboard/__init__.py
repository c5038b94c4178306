"""Run history and the security dashboard (overview, findings, trends, triage, configuration)."""

from __future__ import annotations

from typing import Any

__all__ = ["HistoryStore", "create_app", "open_store", "record_session"]


def __getattr__(name: str) -> Any:
    if name in ("HistoryStore", "open_store"):
        from pytest_aisp.dashboard import store

        return getattr(store, name)
    if name == "create_app":
        from pytest_aisp.dashboard.app import create_app

        return create_app
    if name == "record_session":
        from pytest_aisp.dashboard.ingest import record_session

        return record_session
    raise AttributeError(name)
