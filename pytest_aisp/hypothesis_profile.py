"""The ``aisp-ci`` Hypothesis profile: derandomized and without a database, so CI runs repeat exactly.

Registering it imports Hypothesis (about 0.7 s), a cost every pytest process would pay, each xdist worker and
the controller included, if the plugin registered it at import. So it is registered when Hypothesis itself is
first imported, through Hypothesis's ``hypothesis`` entry-point group (``register`` below), and by the plugin
when a ``--hypothesis-*`` option asks for Hypothesis before any test has imported it.
"""

from __future__ import annotations

import sys

HYPOTHESIS_CI_PROFILE = "aisp-ci"


def register() -> None:
    """Register ``aisp-ci`` (idempotent). Hypothesis calls this from its ``hypothesis`` entry point."""
    from hypothesis import HealthCheck, settings

    settings.register_profile(
        HYPOTHESIS_CI_PROFILE, derandomize=True, database=None, deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )


def current_profile(requested: str | None) -> str:
    """The profile tests will run under, without importing Hypothesis when nothing has yet.

    ``requested`` is ``--hypothesis-profile``; without it and without Hypothesis loaded it is ``default``.
    """
    loaded = sys.modules.get("hypothesis")
    if loaded is None:
        return requested or "default"
    return str(getattr(loaded.settings, "_current_profile", None) or requested or "default")
