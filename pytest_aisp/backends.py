"""Lazy imports of optional backends, with install hints when they are missing."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from pytest_aisp.findings import BackendMissing

# import name -> (extra that installs it, name shown in the header)
KNOWN_BACKENDS: dict[str, str] = {
    "torch": "torch",
    "art": "art",
    "modelscan": "modelscan",
    "garak": "garak",
    "textattack": "textattack",
    "augly": "augly",
    "prometheus_client": "monitor",
    "model_signing": "sign",
    "xdist": "xdist",
    "pytest_html": "html",
}


def require(module: str, extra: str, hint: str = "") -> ModuleType:
    """Import ``module`` or raise ``BackendMissing`` naming ``pip install "pytest-aisp[extra]"``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if exc.name and not module.startswith(exc.name) and exc.name != module:
            # The backend is there but one of its own imports fails: say which.
            hint = f"{hint} (importing {module} failed on {exc.name}: {exc})".strip()
        raise BackendMissing(module, extra, hint) from exc


def available(module: str) -> bool:
    """True when ``module`` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def installed_backends() -> dict[str, bool]:
    """Which known backends are installed, for the report header."""
    return {name: available(name) for name in KNOWN_BACKENDS}
