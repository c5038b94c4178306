"""The project's own tests run under the aisp-ci Hypothesis profile, so every run repeats exactly."""

from __future__ import annotations

# numpy's C core cannot be imported twice in one process; pytester's in-process runs drop the modules
# they imported, so numpy is loaded here, before any of them.
import numpy  # noqa: F401
from hypothesis import settings

import pytest_aisp.plugin  # noqa: F401  - registers the aisp-ci profile

settings.load_profile("aisp-ci")
