"""Allowlist-first policy: shipped defaults, user TOML, [tool.aisp.scan], denylist precedence."""

from __future__ import annotations

import pickle
import textwrap
from pathlib import Path

import pytest

from pytest_aisp.cli import main
from pytest_aisp.findings import AispError
from pytest_aisp.scan import load_policy_file, scan_artifact
from pytest_aisp.scan.policy import ScanPolicy, default_allowlist, judge_global, policy_from_mapping


class TeamModel:
    """A team's own model class: unknown to the shipped allowlist."""

    def __init__(self) -> None:
        self.weights = [1.0, 2.0]


def _team_pickle(tmp_path: Path) -> Path:
    path = tmp_path / "team.pkl"
    path.write_bytes(pickle.dumps(TeamModel(), protocol=4))
    return path


def test_unknown_global_is_high_then_allowed_by_a_policy_file(tmp_path: Path) -> None:
    path = _team_pickle(tmp_path)
    result = scan_artifact(path)
    (finding,) = result.findings
    assert finding.rule_id == "AISP-SCAN-PICKLE-GLOBAL" and finding.severity.value == "high"
    policy_file = tmp_path / "scan-policy.toml"
    policy_file.write_text(f'allow = ["{TeamModel.__module__}.TeamModel"]\n')
    assert scan_artifact(path, policy=policy_file).findings == ()
    assert scan_artifact(path, policy=load_policy_file(policy_file)).ok


def test_patterns_allow_one_public_segment(tmp_path: Path) -> None:
    policy = policy_from_mapping({"allow": ["mypkg.layers.*"]})
    assert judge_global("mypkg.layers", "Block", policy).kind == "allowed"
    assert judge_global("mypkg.layers", "_private", policy).kind == "unknown"
    assert judge_global("mypkg.layers.sub", "Block", policy).kind == "unknown"
    deep = policy_from_mapping({"allow": ["mypkg.**"]})
    assert judge_global("mypkg.a.b", "C", deep).kind == "allowed"


def test_denylist_wins_over_any_allowlist() -> None:
    policy = policy_from_mapping({"allow": ["os.system", "builtins.eval", "mypkg.*"]})
    assert judge_global("os", "system", policy).kind == "dangerous"
    assert judge_global("builtins", "eval", policy).kind == "dangerous"
    assert judge_global("mypkg", "os.system", policy).kind == "dangerous"
    custom = policy_from_mapping({"deny": ["mypkg.Dangerous"]})
    assert judge_global("mypkg", "Dangerous", custom).kind == "dangerous"


@pytest.mark.parametrize("name", ["builtins.exec", "builtins.eval", "builtins.getattr", "os.system",
                                  "posix.system", "nt.system", "subprocess.Popen", "pty.spawn", "socket.socket",
                                  "shutil.rmtree", "ctypes.CDLL", "importlib.import_module", "runpy.run_path",
                                  "pydoc.locate", "pkgutil.resolve_name", "code.InteractiveInterpreter",
                                  "timeit.timeit", "cProfile.run", "pdb.run", "operator.attrgetter",
                                  "operator.methodcaller", "_operator.itemgetter", "functools.partial",
                                  "dataclasses._create_fn", "io.FileIO", "builtins.open", "pickle.loads",
                                  "torch.load", "numpy.load", "pandas.read_pickle", "joblib.load",
                                  "numpy.testing._private.utils.runstring", "webbrowser.open", "sys.modules",
                                  "marshal.loads", "types.FunctionType", "asyncio.create_subprocess_shell"])
def test_dangerous_callables_are_critical(name: str) -> None:
    module, _, attr = name.rpartition(".")
    assert judge_global(module, attr, ScanPolicy(allow=default_allowlist())).kind == "dangerous"


def test_default_allowlist_is_safe_and_covers_real_ml_names() -> None:
    allow = default_allowlist()
    assert {"torch._utils._rebuild_tensor_v2", "collections.OrderedDict", "numpy.dtype",
            "joblib.numpy_pickle.NumpyArrayWrapper", "sklearn.linear_model._logistic.LogisticRegression",
            "torch.nn.modules.linear.Linear"} <= allow
    for name in allow:
        module, _, attr = name.rpartition(".")
        assert judge_global(module, attr, ScanPolicy(allow=allow)).kind == "allowed", name


def test_pyproject_section_is_read_by_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = _team_pickle(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["scan", str(path)]) == 1
    (tmp_path / "pyproject.toml").write_text(textwrap.dedent(f"""
        [tool.aisp.scan]
        allow = ["{TeamModel.__module__}.TeamModel"]
    """))
    assert main(["scan", str(path)]) == 0
    capsys.readouterr()


def test_bad_policy_raises_aisp_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("allow = 3\n")
    with pytest.raises(AispError, match="allow"):
        load_policy_file(bad)
    bad.write_text("nonsense = [\n")
    with pytest.raises(AispError, match="TOML"):
        load_policy_file(bad)
    with pytest.raises(AispError, match="unknown scan policy keys"):
        policy_from_mapping({"alow": []})
    with pytest.raises(AispError, match="does not exist"):
        scan_artifact(tmp_path / "missing.pt")


@pytest.mark.parametrize("name", ["len", "min", "max", "range", "slice", "complex", "set", "frozenset", "bytearray",
                                  "sum", "abs", "sorted", "ValueError", "KeyError"])
def test_builtins_that_only_build_data_are_allowed(name: str) -> None:
    policy = ScanPolicy(allow=default_allowlist())
    assert judge_global("builtins", name, policy).kind == "allowed"


@pytest.mark.parametrize("name", ["getattr", "setattr", "eval", "exec", "compile", "open", "__import__", "globals",
                                  "vars", "input", "breakpoint", "help", "type", "map", "filter", "print",
                                  "memoryview", "super", "delattr", "locals", "exit"])
def test_builtins_that_can_run_code_stay_dangerous(name: str) -> None:
    assert judge_global("builtins", name, ScanPolicy(allow=default_allowlist())).kind == "dangerous"


def test_future_features_and_old_numpy_names_are_allowed() -> None:
    import __future__

    policy = ScanPolicy(allow=default_allowlist())
    for feature in __future__.all_feature_names:
        assert judge_global("__future__", feature, policy).kind == "allowed", feature
    assert judge_global("__future__", "_Feature", policy).kind == "allowed"
    assert judge_global("__future__", "__builtins__", policy).kind == "dangerous"
    for name in ("numpy.core._internal._reconstruct", "numpy.core.multiarray._reconstruct",
                 "numpy.core.multiarray.scalar", "numpy.random.__RandomState_ctor"):
        module, _, attr = name.rpartition(".")
        assert judge_global(module, attr, policy).kind == "allowed", name
    assert judge_global("numpy.core", "_ufunc_reconstruct", policy).kind == "dangerous"


def test_allowlist_is_not_built_from_the_scored_corpus() -> None:
    script = (Path(__file__).resolve().parents[2] / "fixtures" / "scan" / "build_allowlist.py").read_text()
    assert "import make_corpus" not in script and "from make_corpus" not in script and "write_benign" not in script
