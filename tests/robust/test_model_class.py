"""State dicts and safetensors weights, built into the architecture the configuration names.

The project is laid out like a small ML repository: a package with the model class, ``models/`` with
the weights saved as teams save them, ``data/``, and the tests in ``tests/``, run from there.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from pytest_aisp.config import Settings
from pytest_aisp.findings import AispError, UnsafeArtifact
from pytest_aisp.robust import as_classifier, model_under_test_from_settings

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")

# The fixtures' digits CNN (fixtures/robust/make_models.py:_cnn) as a team writes it: its own class.
MODELS_PY = '''
import torch


class DigitsCNN(torch.nn.Sequential):
    def __init__(self, channels: int = 8, classes: int = 10):
        super().__init__(
            torch.nn.Conv2d(1, channels, 3, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(channels, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Flatten(), torch.nn.Linear(16 * 4 * 4, classes),
        )
'''

TEST_SECURITY = '''
import pytest
from pytest_aisp import RobustnessFailure, assert_robust


def test_model_is_white_box_and_accurate(aisp_model):
    assert aisp_model.module is not None and type(aisp_model.module).__name__ == "DigitsCNN"
    result = assert_robust(aisp_model, attack="pgd", eps=0.01, min_acc=0.7, steps=10)
    assert result.clean_acc > 0.9


@pytest.mark.xfail(strict=True, raises=RobustnessFailure)
def test_not_robust_at_large_eps(aisp_model):
    assert_robust(aisp_model, attack="pgd", eps=0.3, min_acc=0.7, steps=10)
'''


def _repo(pytester: pytest.Pytester, robust_models, weights: str) -> Path:
    files = robust_models["digits_cnn"]
    root = pytester.path
    package = root / "acme_digits"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "models.py").write_text(MODELS_PY)
    (root / "models").mkdir()
    (root / "data").mkdir()
    shutil.copy(files["state_dict"], root / "models" / "cnn.pt")
    state = torch.load(files["state_dict"], weights_only=True)
    safetensors_torch.save_file(state, str(root / "models" / "cnn.safetensors"))
    shutil.copy(files["data"], root / "data" / "holdout.npz")
    pytester.makepyprojecttoml(f'''
        [tool.pytest.ini_options]
        testpaths = ["tests"]

        [tool.aisp]
        model = "models/{weights}"
        model_class = "acme_digits.models:DigitsCNN"
        model_kwargs = {{channels = 8}}
        data = "data/holdout.npz"
    ''')
    tests = root / "tests"
    tests.mkdir()
    (tests / "test_model_security.py").write_text(TEST_SECURITY)
    return tests


@pytest.mark.parametrize("weights", ["cnn.pt", "cnn.safetensors"])
def test_state_dict_repo_run_from_its_tests_folder(pytester, robust_models, monkeypatch, weights):
    tests = _repo(pytester, robust_models, weights)
    monkeypatch.chdir(tests)
    result = pytester.runpytest("-p", "no:cacheprovider", "-m", "aisp")
    result.assert_outcomes(passed=1, xfailed=1)


def test_model_class_from_the_command_line_and_environment(pytester, robust_models, monkeypatch):
    tests = _repo(pytester, robust_models, "cnn.pt")
    pyproject = pytester.path / "pyproject.toml"
    text = pyproject.read_text().replace('model_class = "acme_digits.models:DigitsCNN"\n', "")
    pyproject.write_text(text.replace("model_kwargs = {channels = 8}\n", ""))
    monkeypatch.chdir(tests)
    result = pytester.runpytest("-p", "no:cacheprovider", "-m", "aisp", "-k", "accurate")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*holds weights only (a state dict of 6 tensors)*model_class*"])
    result = pytester.runpytest("-p", "no:cacheprovider", "-k", "accurate",
                                "--aisp-model-class=acme_digits.models:DigitsCNN",
                                '--aisp-model-kwargs={"channels": 8}')
    result.assert_outcomes(passed=1)
    monkeypatch.setenv("AISP_MODEL_CLASS", "acme_digits.models:DigitsCNN")
    pytester.runpytest("-p", "no:cacheprovider", "-k", "accurate").assert_outcomes(passed=1)


def _settings(root: Path, model: Path, **values) -> Settings:
    return Settings(rootdir=root, model=model, **values)


def test_the_message_says_which_way_fits_the_file(robust_models, tmp_path):
    files = robust_models["digits_cnn"]
    spec = "acme_digits.models:DigitsCNN"
    package = tmp_path / "acme_digits"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "models.py").write_text(MODELS_PY)
    # A state dict without an architecture: name one (no advice to re-save it).
    with pytest.raises(AispError) as caught:
        model_under_test_from_settings(_settings(tmp_path, files["state_dict"]))
    assert "model_class" in str(caught.value) and "torch.jit" not in str(caught.value)
    # A whole pickled module: refused by the scan, with the state_dict route for its own class.
    import importlib
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        module = importlib.import_module("acme_digits.models").DigitsCNN()
        module.load_state_dict(torch.load(files["state_dict"], weights_only=True))
        torch.save(module, tmp_path / "whole.pt")
    finally:
        sys.path.remove(str(tmp_path))
        for name in [n for n in sys.modules if n.startswith("acme_digits")]:
            del sys.modules[name]
    with pytest.raises(UnsafeArtifact) as refused:
        model_under_test_from_settings(_settings(tmp_path, tmp_path / "whole.pt"))
    message = str(refused.value)
    assert "refusing to load" in message and "model.state_dict()" in message
    assert f'model_class = "{spec}"' in message and "\x1b[" not in message
    # TorchScript carries its own architecture: a model_class beside it is a mistake.
    with pytest.raises(AispError, match="carries its own architecture"):
        model_under_test_from_settings(_settings(tmp_path, files["torchscript"], model_class=spec))
    # Weights that do not fit the constructor arguments.
    with pytest.raises(AispError, match=r"do not fit acme_digits.models:DigitsCNN\(channels=4\)"):
        model_under_test_from_settings(_settings(tmp_path, files["state_dict"], model_class=spec,
                                                 model_kwargs={"channels": 4}))
    with pytest.raises(AispError, match="cannot import acme_missing"):
        model_under_test_from_settings(_settings(tmp_path, files["state_dict"], model_class="acme_missing:Net"))


def test_python_api_builds_the_same_model(robust_models, tmp_path, monkeypatch):
    files = robust_models["digits_cnn"]
    (tmp_path / "acme_digits").mkdir()
    (tmp_path / "acme_digits" / "__init__.py").write_text("")
    (tmp_path / "acme_digits" / "models.py").write_text(MODELS_PY)
    monkeypatch.syspath_prepend(str(tmp_path))
    classifier = as_classifier(files["state_dict"], model_class="acme_digits.models:DigitsCNN")
    with np.load(files["data"]) as archive:
        x = archive["x"][:20]
    reference = torch.jit.load(str(files["torchscript"]))
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
    assert classifier.white_box and np.allclose(classifier.predict(x), expected, atol=1e-5)
