"""The example ML repository's security suite runs green, with every known weakness still an xfail.

This is what `tox -e demo` runs; here it is part of the test suite, so CI catches an example that rots.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_example_suite_passes_and_writes_every_report(pytester: pytest.Pytester, sarif_schema: dict) -> None:
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
    jsonschema.validate(json.loads((out / "aisp.sarif").read_text()), sarif_schema)
    sonar = json.loads((out / "aisp-sonar.json").read_text())
    assert sonar["rules"] and sonar["issues"]
    cases = ET.parse(out / "junit.xml").getroot().iter("testcase")
    assert any(p.get("name") == "aisp.rule_ids" for case in cases for p in case.iter("property"))
    assert "aisp-findings" in (out / "report.html").read_text()
