"""The docs list every rule; the example part runs as a user's test suite (pytester)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_aisp.scan import __all__ as scan_all
from pytest_aisp.scan.rules import RULES

ROOT = Path(__file__).resolve().parents[2]


def test_docs_list_every_rule_with_its_severity() -> None:
    text = (ROOT / "docs" / "scan.md").read_text()
    for rule in RULES:
        assert f"| `{rule.rule_id}` | {rule.severity.value} |" in text


def test_public_names_resolve_from_the_package() -> None:
    import pytest_aisp

    for name in ("scan_artifact", "assert_safe_artifact", "load_model_safely", "ScanResult"):
        assert name in scan_all
        assert getattr(pytest_aisp, name) is not None


def test_import_is_light() -> None:
    import subprocess
    import sys

    code = ("import sys; import pytest_aisp.scan, pytest_aisp.scan.engine; "
            "print(sorted(m for m in ('torch', 'onnx', 'h5py', 'sklearn', 'modelscan', 'onnxruntime') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=ROOT, env={"PYTHONPATH": str(ROOT)})
    assert done.stdout.strip() == "[]"


def test_example_scan_tests_run_as_a_test_suite(pytester: pytest.Pytester) -> None:
    names = ("test_release_checkpoint_is_safe or test_whole_release_folder_is_clean or "
             "test_checkpoint_loads_without_running_code or test_untrusted_download_is_refused")
    result = pytester.runpytest_subprocess(str(ROOT / "examples" / "test_model_security.py"), "-m", "aisp",
                                           "-k", names, "-p", "no:cacheprovider", f"--rootdir={ROOT}")
    result.assert_outcomes(passed=4)
