"""The project's own tests run under the aisp-ci Hypothesis profile, so every run repeats exactly."""

from __future__ import annotations

from hypothesis import settings

import pytest_aisp.plugin  # noqa: F401  - registers the aisp-ci profile

settings.load_profile("aisp-ci")
