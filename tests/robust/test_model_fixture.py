"""The aisp_model fixture's factory, and the card's call through the plugin."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pytest_aisp.config import Settings
from pytest_aisp.findings import AispError
from pytest_aisp.robust import ModelUnderTest, assert_robust, model_under_test_from_settings

pytest.importorskip("torch")


def _settings(root: Path, model: Path, data: Path | None, robust: dict | None = None) -> Settings:
    return Settings(rootdir=root, model=model, data=data, tool={"robust": robust or {}})


@pytest.mark.parametrize("kind", ["torchscript", "onnx"])
def test_factory_loads_model_and_data(robust_models, tmp_path, kind):
    files = robust_models["digits_cnn"]
    model = model_under_test_from_settings(_settings(tmp_path, files[kind], files["data"]), device="cpu")
    assert isinstance(model, ModelUnderTest) and model.location == str(files[kind])
    assert model.x.shape == (540, 1, 8, 8) and model.y.shape == (540,)
    attack = "square" if kind == "onnx" else "pgd"  # ONNX is black-box: no gradients
    result = assert_robust(model, attack=attack, eps=0.01, min_acc=0.7, steps=20)
    assert result.clean_acc > 0.95 and result.location == str(files[kind])


def test_factory_reads_per_feature_bounds_from_the_data(robust_models, tmp_path):
    files = robust_models["cancer_mlp"]
    model = model_under_test_from_settings(_settings(tmp_path, files["torchscript"], files["data"]))
    with np.load(files["data"]) as archive:
        assert np.array_equal(model.classifier.lower, archive["lower"])
    unbounded = model_under_test_from_settings(
        _settings(tmp_path, files["torchscript"], files["data"], {"bounds": "none", "nb_classes": 2}))
    assert np.isinf(unbounded.classifier.lower) and unbounded.classifier.nb_classes == 2


def test_factory_errors_say_what_to_fix(robust_models, tmp_path):
    with pytest.raises(AispError, match="does not exist"):
        model_under_test_from_settings(_settings(tmp_path, tmp_path / "missing.pt", None))
    state_dict = robust_models["digits_mlp"]["state_dict"]
    with pytest.raises(AispError):
        model_under_test_from_settings(_settings(tmp_path, state_dict, None))
    model = model_under_test_from_settings(_settings(tmp_path, robust_models["digits_mlp"]["onnx"], None))
    with pytest.raises(AispError, match="--aisp-data"):
        assert_robust(model, eps=0.03, min_acc=0.7)


def test_the_cards_call_works_with_data_from_config(pytester, robust_models):
    files = robust_models["digits_mlp"]
    pytester.makepyprojecttoml(f"""
        [tool.aisp]
        model = {str(files["torchscript"])!r}
        data = {str(files["data"])!r}
    """)
    pytester.makepyfile("""
        import pytest
        from pytest_aisp import RobustnessFailure, assert_robust

        def test_robust(aisp_model):
            assert_robust(aisp_model, attack="pgd", eps=0.03, min_acc=0.7)

        @pytest.mark.xfail(strict=True, raises=RobustnessFailure)
        def test_not_robust_at_large_eps(aisp_model):
            assert_robust(aisp_model, attack="pgd", eps=0.3, min_acc=0.7)
    """)
    result = pytester.runpytest("-p", "no:cacheprovider", "-m", "aisp", "-rA")
    result.assert_outcomes(passed=1, xfailed=1)


class _Payload:
    """Pickles to a call of os.system; the test never unpickles it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_unsafe_model_file_fails_the_test_instead_of_loading(pytester: pytest.Pytester) -> None:
    import pickle

    marker = pytester.path / "payload-ran.marker"
    (pytester.path / "model.pkl").write_bytes(pickle.dumps(_Payload(marker), protocol=4))
    pytester.makepyfile(test_m="def test_m(aisp_model):\n    raise AssertionError('must not be reached')\n")
    result = pytester.runpytest("--aisp-model=model.pkl")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*UnsafeArtifact*refusing to load*", "*AISP-SCAN-*os*system*"])
    assert not marker.exists()
