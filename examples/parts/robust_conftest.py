"""Fixtures for the robustness part of the example suite.

The example model is the digits MLP from fixtures/robust/make_models.py, built on first use. When the
project configures its own model (--aisp-model / [tool.aisp] model), aisp_model uses that instead.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path
from typing import Any

import pytest


def _robust_models_script() -> Path:
    for folder in Path(__file__).resolve().parents:
        script = folder / "fixtures" / "robust" / "make_models.py"
        if script.is_file():
            return script
    raise FileNotFoundError("fixtures/robust/make_models.py not found above the examples")


@pytest.fixture(scope="session")
def robust_example_models() -> dict[str, dict[str, Path]]:
    """Trained example models (TorchScript, ONNX, state dict, eval data), built once per session."""
    script = _robust_models_script()
    spec = importlib.util.spec_from_file_location("robust_make_models", script)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module.build_all()


@pytest.fixture(scope="session")
def aisp_model(aisp_config: Any, aisp_device: str,
               robust_example_models: dict[str, dict[str, Path]]) -> Any:
    """The configured model, or the example digits MLP with its data, loaded through the settings."""
    from pytest_aisp.robust import model_under_test_from_settings

    settings = aisp_config
    if settings.model is None:
        files = robust_example_models["digits_mlp"]
        settings = dataclasses.replace(settings, model=files["torchscript"], data=files["data"])
    return model_under_test_from_settings(settings, device=aisp_device)


@pytest.fixture(scope="session")
def tabular_model(aisp_config: Any, aisp_device: str,
                  robust_example_models: dict[str, dict[str, Path]]) -> Any:
    """The breast-cancer model: standardised features with per-feature bounds saved beside the data."""
    from pytest_aisp.robust import model_under_test_from_settings

    files = robust_example_models["cancer_mlp"]
    settings = dataclasses.replace(aisp_config, model=files["onnx"], data=files["data"])
    return model_under_test_from_settings(settings, device=aisp_device)
