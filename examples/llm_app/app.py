"""The reference chat app, as shipped in the wheel (``pytest_aisp.llm.reference_app``).

Run it:  python examples/llm_app/app.py --port 8000 --weak injection,system-prompt-leak
     or  aisp llm serve-reference --port 8000 --weak injection,system-prompt-leak
"""

from __future__ import annotations

from pytest_aisp.llm.reference_app import *  # noqa: F403  (the app's names, for scripts that import this file)
from pytest_aisp.llm.reference_app import main

if __name__ == "__main__":
    main()
