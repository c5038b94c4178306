"""Every entry point reads the project's [tool.aisp.scan]; nothing scanned is never a pass; bad input
gets one clear line; refusal messages name the supported ways and carry no terminal escapes."""

from __future__ import annotations

import os
import pickle
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pytest_aisp.cli import main
from pytest_aisp.config import Settings
from pytest_aisp.findings import AispError, Severity, UnsafeArtifact
from pytest_aisp.scan import (
    assert_safe_artifact,
    load_model_safely,
    model_from_settings,
    policy_from_settings,
    scan_artifact,
)
from pytest_aisp.scan.loader import TORCH_EXPORT_ROUTE, TORCH_STATE_DICT_ROUTE

ROOT = Path(__file__).resolve().parents[2]
# A pickle of a team's own class, mypkg.models.Net (written by hand: the class need not exist here).
TEAM_PICKLE = b"\x80\x04\x8c\x0cmypkg.models\x8c\x03Net\x93)\x81."
PROJECT_TOML = textwrap.dedent("""
    [tool.aisp.scan]
    allow = ["mypkg.models.Net"]
""")


# --- nothing scanned is never a pass (FIFOs, sockets, empty directories) -------------------------------


def test_empty_directory_is_an_error_not_a_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "models"
    empty.mkdir()
    (empty / "nested").mkdir()  # folders without files are still nothing to scan
    with pytest.raises(AispError, match="nothing to scan"):
        scan_artifact(empty)
    assert main(["scan", str(empty)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("aisp: error: nothing to scan") and err.count("\n") == 1


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_fifo_and_socket_in_a_directory_are_findings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "weights.pkl").write_bytes(pickle.dumps({"w": [1.0]}))
    os.mkfifo(folder / "pipe.pkl")
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(folder / "control.sock"))
        result = scan_artifact(folder)  # must not block on the FIFO
    finally:
        server.close()
    by_name = {Path(f.path).name: f for f in result.files}
    assert set(by_name) == {"weights.pkl", "pipe.pkl", "control.sock"}
    assert by_name["weights.pkl"].findings == ()
    for name, kind in (("pipe.pkl", "FIFO"), ("control.sock", "socket")):
        (finding,) = by_name[name].findings
        assert finding.rule_id == "AISP-SCAN-UNSCANNABLE" and kind in finding.message
    assert not result.ok
    os.unlink(folder / "control.sock")
    assert main(["scan", str(folder)]) == 1
    assert "FIFO (named pipe): not a regular file" in capsys.readouterr().out


@pytest.mark.parametrize(("content", "says"), [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "is not a TOML file"),
    (b"allow = [\n", "is not valid TOML"),
    (b"[project]\nname = 'x'\n[tool.black]\nline-length = 80\n", "no [tool.aisp.scan]"),
])
def test_bad_policy_files_get_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes,
                                            says: str) -> None:
    model = tmp_path / "m.pkl"
    model.write_bytes(pickle.dumps([1]))
    policy = tmp_path / "policy.toml"
    policy.write_bytes(content)
    assert main(["scan", "--policy", str(policy), str(model)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("aisp: error: scan policy") and str(policy) in err and says in err
    assert err.count("\n") == 1 and "internal error" not in err
    assert main(["scan", "--policy", str(tmp_path), str(model)]) == 2  # a directory
    assert "cannot read scan policy" in capsys.readouterr().err


def test_binary_project_configuration_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_bytes(b"\xff\xfe\x00binary")
    (tmp_path / "m.pkl").write_bytes(pickle.dumps([1]))
    done = subprocess.run([sys.executable, "-m", "pytest_aisp.cli", "scan", "m.pkl"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 2 and done.stderr.startswith("aisp: error:"), done.stderr
    assert "internal error" not in done.stderr


# --- [tool.aisp.scan] applies everywhere ------------------------------------------------------------


def test_scan_section_applies_in_pytest_from_a_subdirectory(pytester: pytest.Pytester,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyprojecttoml(PROJECT_TOML)
    (pytester.path / "models").mkdir()
    (pytester.path / "models" / "net.pkl").write_bytes(TEAM_PICKLE)
    tests = pytester.mkdir("tests")
    (tests / "test_model.py").write_text(textwrap.dedent("""
        from pathlib import Path
        from pytest_aisp import assert_safe_artifact, scan_artifact

        MODEL = Path(__file__).parents[1] / "models" / "net.pkl"

        def test_assert_uses_the_project_policy():
            assert assert_safe_artifact(MODEL).findings == ()

        def test_scan_uses_the_project_policy():
            assert scan_artifact(MODEL).ok
    """))
    monkeypatch.chdir(tests)  # run from tests/, as a user does: the rootdir's configuration still applies
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", "test_model.py")
    result.assert_outcomes(passed=2)


def test_scan_section_applies_from_python_outside_pytest(tmp_path: Path) -> None:
    project, other = tmp_path / "project", tmp_path / "other"
    (project / "sub").mkdir(parents=True)
    other.mkdir()
    (project / "pyproject.toml").write_text(PROJECT_TOML)
    model = project / "net.pkl"
    model.write_bytes(TEAM_PICKLE)
    code = ("import sys; from pytest_aisp.scan import scan_artifact, assert_safe_artifact, scan_bytes; "
            "path = sys.argv[1]; r = scan_artifact(path); assert r.ok, r.findings; assert_safe_artifact(path); "
            "assert scan_bytes(open(path, 'rb').read(), 'n.pkl').ok; print('ok')")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code, str(model)], cwd=project / "sub", capture_output=True,
                          text=True, timeout=120, env=env)
    assert done.stdout.strip() == "ok", done.stderr
    # outside the project the same file is an unknown global (high)
    done = subprocess.run([sys.executable, "-c", code, str(model)], cwd=other, capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 1 and "AISP-SCAN-PICKLE-GLOBAL" in done.stderr


def test_policy_from_settings_threshold_precedence(tmp_path: Path) -> None:
    section = {"scan": {"allow": ["mypkg.models.Net"], "fail_on": "high"}}
    policy = policy_from_settings(Settings(rootdir=tmp_path, tool=section))
    assert "mypkg.models.Net" in policy.allow and policy.fail_on is Severity.HIGH
    from_env = Settings(rootdir=tmp_path, tool=section, fail_on=Severity.LOW,
                        sources={"fail_on": "environment AISP_FAIL_ON"})
    assert policy_from_settings(from_env).fail_on is Severity.LOW  # the environment overrides the files
    from_files = Settings(rootdir=tmp_path, tool=section, fail_on=Severity.LOW,
                          sources={"fail_on": "[tool.aisp] fail_on"})
    assert policy_from_settings(from_files).fail_on is Severity.HIGH  # the scan section is more specific
    plain = Settings(rootdir=tmp_path, fail_on=Severity.CRITICAL, sources={"fail_on": "[tool.aisp] fail_on"})
    assert policy_from_settings(plain).fail_on is Severity.CRITICAL


def test_loader_uses_the_project_policy(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    model = tmp_path / "weights.pt"
    torch.save({"w": torch.ones(2)}, model)
    deny = Settings(rootdir=tmp_path, model=model, tool={"scan": {"deny": ["torch._utils._rebuild_tensor_v2"]}})
    with pytest.raises(UnsafeArtifact, match="rebuild_tensor_v2"):
        model_from_settings(deny)
    from pytest_aisp.config import set_current_settings

    set_current_settings(deny)
    try:
        with pytest.raises(UnsafeArtifact):
            load_model_safely(model)  # no policy given: the settings in force apply
        with pytest.raises(UnsafeArtifact):
            assert_safe_artifact(model)
    finally:
        set_current_settings(None)
    assert load_model_safely(model).loader == "torch.load(weights_only=True)"


# --- refusal messages ---------------------------------------------------------------------------


def test_whole_module_refusal_names_the_routes_without_escapes(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    path = tmp_path / "whole.pt"
    torch.save(torch.nn.Sequential(torch.nn.Linear(2, 2)), path)
    with pytest.raises(AispError) as info:
        load_model_safely(path)
    message = str(info.value)
    assert "\x1b" not in message and "\n" not in message
    assert TORCH_STATE_DICT_ROUTE in message and TORCH_EXPORT_ROUTE in message
    assert "torch.nn.modules.container.Sequential" in message
    assert "model_class" in TORCH_STATE_DICT_ROUTE and "jit.script" in TORCH_EXPORT_ROUTE
