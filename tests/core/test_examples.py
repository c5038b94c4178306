"""The example ML repository's security suite runs green, with every known weakness still an xfail.

This is what `tox -e demo` runs; here it is part of the test suite, so CI catches an example that rots.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _path_without(*tools: str) -> str:
    """PATH with every folder that holds one of ``tools`` left out: a machine without those system packages."""
    folders = os.environ.get("PATH", "").split(os.pathsep)
    return os.pathsep.join(f for f in folders if f and not any((Path(f) / tool).exists() for tool in tools))


def test_example_suite_passes_and_writes_every_report(
    pytester: pytest.Pytester, sarif_schema: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run as on a machine with only Python: no system ffmpeg (the wheel's is used), no system tool at all."""
    monkeypatch.setenv("PATH", _path_without("ffmpeg", "promtool", "chromium", "redis-server", "pg_ctl"))
    monkeypatch.delenv("AISP_FFMPEG", raising=False)
    monkeypatch.delenv("AISP_WORDNET_DIR", raising=False)
    monkeypatch.setenv("AISP_HIDE_SYSTEM_TOOLS", "1")
    out = pytester.path / "reports"
    result = pytester.runpytest_subprocess(
        str(ROOT / "examples"), "-m", "aisp", "-p", "no:cacheprovider", f"--rootdir={ROOT}",
        f"--junitxml={out / 'junit.xml'}", f"--html={out / 'report.html'}", "--self-contained-html",
        f"--aisp-sarif={out / 'aisp.sarif'}", f"--aisp-sonar={out / 'aisp-sonar.json'}", f"--aisp-report-dir={out}",
        timeout=900,
    )
    outcomes = result.parseoutcomes()
    assert result.ret == 0, result.stdout.str()[-3000:]
    assert outcomes.get("passed", 0) >= 38 and outcomes.get("xfailed", 0) >= 15
    assert "failed" not in outcomes and "error" not in outcomes and "xpassed" not in outcomes
    assert "skipped" not in outcomes, "no example may skip for a missing system package"
    jsonschema.validate(json.loads((out / "aisp.sarif").read_text()), sarif_schema)
    sonar = json.loads((out / "aisp-sonar.json").read_text())
    assert sonar["rules"] and sonar["issues"]
    cases = ET.parse(out / "junit.xml").getroot().iter("testcase")
    assert any(p.get("name") == "aisp.rule_ids" for case in cases for p in case.iter("property"))
    assert "aisp-findings" in (out / "report.html").read_text()
