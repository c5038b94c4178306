"""GPU mapping per xdist worker, the aisp CLI core commands, and a light import."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import jsonschema
import pytest

from pytest_aisp.cli import main
from pytest_aisp.devices import gpu_for_worker, gpu_pool, worker_index

GPU_CONFTEST = """
import json, os, pathlib
worker = os.environ.get("PYTEST_XDIST_WORKER", "controller")
pathlib.Path("gpu-" + worker + ".json").write_text(json.dumps(os.environ.get("CUDA_VISIBLE_DEVICES")))
"""


@pytest.fixture(autouse=True)
def _not_inside_a_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pytest these tests start is a controller, even when this suite itself runs under xdist."""
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT", raising=False)
    monkeypatch.delenv("PYTEST_XDIST_TESTRUNUID", raising=False)


def _worker_map(pytester: pytest.Pytester) -> dict[str, str]:
    return {p.stem[4:]: json.loads(p.read_text()) for p in pytester.path.glob("gpu-gw*.json")}


def test_each_worker_gets_its_gpu_from_cuda_visible_devices(pytester: pytest.Pytester,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,7")
    pytester.makeconftest(GPU_CONFTEST)
    pytester.makepyfile(test_g="import pytest\n@pytest.mark.parametrize('i', range(6))\ndef test_g(i): pass\n")
    pytester.runpytest_subprocess("-n", "3").assert_outcomes(passed=6)
    assert _worker_map(pytester) == {"gw0": "5", "gw1": "7", "gw2": "5"}


def test_aisp_gpus_option_wins_and_ids_are_opaque(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    pytester.makeconftest(GPU_CONFTEST)
    pytester.makepyfile(test_g="import pytest\n@pytest.mark.parametrize('i', range(4))\ndef test_g(i): pass\n")
    pool = "GPU-8a1c2f3e-aaaa,MIG-GPU-8a1c/1/0"
    pytester.runpytest_subprocess("-n", "2", f"--aisp-gpus={pool}").assert_outcomes(passed=4)
    assert _worker_map(pytester) == {"gw0": "GPU-8a1c2f3e-aaaa", "gw1": "MIG-GPU-8a1c/1/0"}


def test_no_pool_leaves_the_environment_alone(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    pytester.makeconftest(GPU_CONFTEST)
    pytester.makepyfile(test_g="def test_g(aisp_device):\n    assert aisp_device == 'cpu'\n")
    pytester.runpytest_subprocess("-n", "2").assert_outcomes(passed=1)
    assert set(_worker_map(pytester).values()) == {None}


def test_pool_helpers() -> None:
    assert gpu_pool((), {"CUDA_VISIBLE_DEVICES": "3, 4,"}) == ("3", "4")
    assert gpu_pool((), {"CUDA_VISIBLE_DEVICES": "-1"}) == ()
    assert gpu_pool(("a",), {"CUDA_VISIBLE_DEVICES": "3"}) == ("a",)
    assert worker_index({"PYTEST_XDIST_WORKER": "gw12"}) == 12
    assert worker_index({}) is None
    assert [gpu_for_worker(("5", "7"), i) for i in range(3)] == ["5", "7", "5"]
    assert gpu_for_worker((), 1) is None


def _sarif(rule: str, location: str, fingerprint: str) -> dict:
    return {
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "pytest-aisp", "version": "0.1.0", "rules": [{"id": rule}]}},
            "results": [{"ruleId": rule, "ruleIndex": 0, "level": "error", "message": {"text": location},
                         "locations": [{"physicalLocation": {"artifactLocation": {"uri": location}}}],
                         "partialFingerprints": {"aispFinding/v2": fingerprint}}],
        }],
    }


def test_report_merge_joins_shards(tmp_path, sarif_schema: dict, capsys: pytest.CaptureFixture[str]) -> None:
    a, b, out = tmp_path / "a.sarif", tmp_path / "b.sarif", tmp_path / "merged" / "all.sarif"
    a.write_text(json.dumps(_sarif("AISP-SCAN-PICKLE-GLOBAL", "m.pkl", "f1")))
    b.write_text(json.dumps(_sarif("AISP-LLM-INJECTION", "app", "f2")))
    assert main(["report", "merge", str(out), str(a), str(b), str(a)]) == 0
    merged = json.loads(out.read_text())
    jsonschema.validate(merged, sarif_schema)
    run = merged["runs"][0]
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == ["AISP-LLM-INJECTION", "AISP-SCAN-PICKLE-GLOBAL"]
    assert sorted((r["ruleId"], r["ruleIndex"]) for r in run["results"]) == [
        ("AISP-LLM-INJECTION", 0), ("AISP-SCAN-PICKLE-GLOBAL", 1)]
    assert "merged 3 SARIF files (2 results)" in capsys.readouterr().err


def test_report_merge_rejects_bad_input(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.sarif"
    bad.write_text("{}")
    assert main(["report", "merge", str(tmp_path / "o.sarif"), str(bad)]) == 2
    assert main(["report", "merge", str(tmp_path / "o.sarif"), str(tmp_path / "none.sarif")]) == 2
    err = capsys.readouterr().err
    assert "is not a SARIF 2.1.0 log" in err and "does not exist" in err and "Traceback" not in err


def test_baseline_update_from_a_report_dir(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_b='''
import pytest
from pytest_aisp import Finding, RobustnessFailure, enforce, record_finding

@pytest.mark.aisp
def test_weak():
    enforce([record_finding(Finding("AISP-ROBUST-EVASION", "high", "weak", "m.pt"))], RobustnessFailure,
            headline="weak")
''')
    pytester.runpytest("--aisp-report-dir=reports").assert_outcomes(failed=1)
    assert main(["baseline", "update", "--report-dir", str(pytester.path / "reports"),
                 "--baseline", str(pytester.path / "aisp-baseline.json")]) == 0
    body = json.loads((pytester.path / "aisp-baseline.json").read_text())
    (entry,) = body["entries"]
    assert {k: entry[k] for k in ("rule_id", "test", "location", "severity", "reason")} == {
        "rule_id": "AISP-ROBUST-EVASION", "test": "test_b.py::test_weak", "location": "m.pt", "severity": "high",
        "reason": "accepted by aisp baseline update"}
    assert len(entry["fingerprint"]) == 32
    pytester.runpytest("--aisp-baseline=aisp-baseline.json").assert_outcomes(passed=1)


def test_cli_version_usage_errors_and_missing_report(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert "pytest-aisp" in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        main(["no-such-command"])
    assert info.value.code == 2
    assert main(["baseline", "update", "--report-dir", str(tmp_path)]) == 2
    assert "run pytest with --aisp-report-dir first" in capsys.readouterr().err


def test_console_script_runs() -> None:
    result = subprocess.run([sys.executable, "-m", "pytest_aisp.cli", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("pytest-aisp ")


HEAVY = ("torch", "art", "garak", "textattack", "augly", "sklearn", "onnxruntime")


def _heavy_after(statement: str) -> str:
    code = f"import sys; {statement}; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_import_is_light() -> None:
    assert _heavy_after("import pytest_aisp") == "[]"
    modules = "; ".join(f"import pytest_aisp.{name}" for name in
                        ("scan", "robust", "llm", "nlp", "multimodal", "supply", "monitor"))
    assert _heavy_after(modules) == "[]"


def test_aisp_scan_imports_neither_pytest_nor_numpy_nor_torch(tmp_path) -> None:
    """``aisp scan`` starts fast: only the scan module is imported, not the other subcommands' backends."""
    import pickle

    model = tmp_path / "model.pkl"
    model.write_bytes(pickle.dumps({"weights": [1.0, 2.0]}))
    code = ("import sys; from pytest_aisp.cli import main; code = main(['scan', sys.argv[1]]); "
            "print(sorted(m for m in ('pytest', '_pytest', 'numpy', 'torch', 'hypothesis') if m in sys.modules)); "
            "sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", code, str(model)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_every_command_is_listed_where_its_module_registers_it() -> None:
    """The lazy command table and the modules' own ``register`` functions agree."""
    from pytest_aisp.cli import COMMANDS, build_parser

    parser = build_parser("*")
    registered = next(a for a in parser._actions if a.dest == "command").choices
    assert set(registered) == set(COMMANDS)
    for name, (module, _) in COMMANDS.items():
        parsed = build_parser(name)
        sub = next(a for a in parsed._actions if a.dest == "command").choices[name]
        assert sub.add_help, f"{name} should come with its real parser from {module}"


THREADS_TEST = """
import json, os, pathlib
import torch

def test_t():
    worker = os.environ["PYTEST_XDIST_WORKER"]
    pathlib.Path("threads-" + worker + ".json").write_text(json.dumps(
        {"torch": torch.get_num_threads(), "omp": os.environ["OMP_NUM_THREADS"],
         "workers": int(os.environ["PYTEST_XDIST_WORKER_COUNT"])}))
"""


# torch is imported only in the pytest subprocesses: a C extension cannot be loaded twice in this process.
needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")


@needs_torch
@pytest.mark.parametrize("workers", [2, 3])
def test_xdist_workers_share_the_cores(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    """Each worker's torch threads times the worker count stays within the cores (one thread at the least)."""
    from pytest_aisp.devices import THREAD_VARIABLES, available_cores

    for name in THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    pytester.makepyfile(**{f"test_{i}": THREADS_TEST for i in range(workers)})
    result = pytester.runpytest_subprocess("-n", str(workers), "-p", "no:randomly")
    result.assert_outcomes(passed=workers)
    seen = [json.loads(p.read_text()) for p in pytester.path.glob("threads-gw*.json")]
    cores = available_cores()
    assert seen and all(s["torch"] == int(s["omp"]) for s in seen)
    assert all(s["torch"] == max(1, cores // s["workers"]) for s in seen)
    if workers <= cores:
        assert max(s["torch"] for s in seen) * workers <= cores
    share = max(1, cores // workers)
    result.stdout.fnmatch_lines([f"*threads per worker={share} ({workers} workers on {cores} cores)*"])


@needs_torch
def test_a_thread_setting_of_the_caller_is_kept(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    pytester.makepyfile(test_0=THREADS_TEST)
    pytester.runpytest_subprocess("-n", "1").assert_outcomes(passed=1)  # alone, a worker would get every core
    seen = json.loads(next(pytester.path.glob("threads-gw*.json")).read_text())
    assert seen["omp"] == "1" and seen["torch"] == 1


def test_a_closed_pipe_ends_the_command_quietly() -> None:
    """``aisp llm list | head -1``: no traceback and no internal error when the reader goes away."""
    done = subprocess.run(f"{sys.executable} -m pytest_aisp.cli llm list | head -1", shell=True,
                          capture_output=True, text=True, executable="/bin/bash")
    assert done.stdout.count("\n") == 1
    assert "error" not in done.stderr and "Traceback" not in done.stderr, done.stderr


EXIT_CONFTEST = """
import atexit, gc, os, pathlib
worker = os.environ.get("PYTEST_XDIST_WORKER", "controller")
here = pathlib.Path.cwd()
# registered before the plugin's configure hook, so atexit runs this one after the plugin's
atexit.register(lambda: (here / ("frozen-" + worker)).write_text(str(gc.get_freeze_count())))
"""


@pytest.mark.parametrize("workers", [0, 2])
def test_a_worker_leaves_its_heap_to_the_os_at_exit(pytester: pytest.Pytester, workers: int) -> None:
    """xdist workers freeze their objects at exit (the controller waits on their shutdown); a serial run does not."""
    pytester.makeconftest(EXIT_CONFTEST)
    pytester.makepyfile(test_g="import pytest\n@pytest.mark.parametrize('i', range(4))\ndef test_g(i): pass\n")
    pytester.runpytest_subprocess("-n", str(workers), "-p", "no:randomly").assert_outcomes(passed=4)
    frozen = {p.name: int(p.read_text()) for p in pytester.path.glob("frozen-*")}
    if workers:
        assert sorted(frozen) == ["frozen-controller", "frozen-gw0", "frozen-gw1"], frozen
        assert frozen["frozen-gw0"] > 1000 and frozen["frozen-gw1"] > 1000
    assert frozen["frozen-controller"] == 0


HYPOTHESIS_FREE_TEST = """
import sys

def test_nothing_has_imported_hypothesis():
    assert "hypothesis" not in sys.modules
"""


def test_the_plugin_does_not_import_hypothesis(pytester: pytest.Pytester) -> None:
    """Hypothesis costs about 0.7 s per process (each xdist worker too): loaded only where a test uses it."""
    pytester.makepyfile(test_h=HYPOTHESIS_FREE_TEST)
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*hypothesis profile=default*"])


PROFILE_TEST = """
from hypothesis import settings

def test_profile():
    assert settings.get_current_profile_name() == "aisp-ci"
    assert settings.default.derandomize and settings.default.database is None
"""


@pytest.mark.parametrize("hypothesis_plugins", ["on", "off"])
def test_the_aisp_ci_profile_is_there_when_asked_for(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, hypothesis_plugins: str
) -> None:
    """``--hypothesis-profile=aisp-ci`` works with Hypothesis's entry points and without them."""
    if hypothesis_plugins == "off":
        monkeypatch.setenv("HYPOTHESIS_NO_PLUGINS", "1")
    pytester.makepyfile(test_p=PROFILE_TEST)
    result = pytester.runpytest_subprocess("-p", "no:randomly", "--hypothesis-profile=aisp-ci")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*hypothesis profile=aisp-ci*"])


def test_importing_hypothesis_registers_the_aisp_ci_profile() -> None:
    """Outside pytest too (a script, a notebook): Hypothesis's entry point registers the profile."""
    code = "from hypothesis import settings; settings.load_profile('aisp-ci'); print(settings.default.derandomize)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "True", done.stderr
