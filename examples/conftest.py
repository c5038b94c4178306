"""Fixtures of the example ML repository: the models, data, endpoints and logs its security tests use.

The aisp fixtures (``aisp_model``, ``llm_endpoint``, ``artifact_manifest``) are overridden here the ordinary
pytest way, so the examples run without any ``--aisp-*`` option; a team that sets the options gets its
own model and endpoint instead where the fixture says so.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from pytest_aisp.llm import LLMEndpoint

# --------------------------------------------------------------------------------------------------------------
# Model files: scan before anything loads them
# --------------------------------------------------------------------------------------------------------------

HERE = Path(__file__).resolve().parent
# the scripts that make this repository's models, data and logs (fixtures/ beside examples/)
FIXTURES = next(p / "fixtures" for p in HERE.parents if (p / "fixtures").is_dir())
SCAN_FIXTURES = FIXTURES / "scan"


def _load_script(path: Path, name: str) -> ModuleType:
    """The script at ``path`` imported once as module ``name`` (registered first: the dataclasses and pickles
    of a script look their module up by name)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None, path
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="session")
def scan_release_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model release as a team ships it: a torch checkpoint, safetensors weights and an ONNX export."""
    import numpy as np
    import torch
    from safetensors.numpy import save_file

    sys.path.insert(0, str(SCAN_FIXTURES))
    import make_corpus

    folder = tmp_path_factory.mktemp("release")
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    torch.save({"model": model.state_dict(), "epoch": 1}, folder / "checkpoint.pt")
    save_file({"w": np.ones((4, 2), dtype=np.float32)}, str(folder / "weights.safetensors"))
    (folder / "model.onnx").write_bytes(make_corpus.onnx_model().SerializeToString())
    return folder


@pytest.fixture(scope="session")
def scan_untrusted_download(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A file from an untrusted hub: a pickle whose payload would only create a marker file."""
    sys.path.insert(0, str(SCAN_FIXTURES))
    import make_corpus

    folder = tmp_path_factory.mktemp("download")
    data, _ = make_corpus.pickle_techniques(lambda name: folder / f"{name}.marker")["dotted_random_os"]
    path = folder / "pytorch_model.bin"
    path.write_bytes(data)
    return path


# --------------------------------------------------------------------------------------------------------------
# Adversarial robustness: evasion
# --------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def robust_example_models() -> dict[str, dict[str, Path]]:
    """Trained example models (TorchScript, ONNX, state dict, eval data), built once per session."""
    return _load_script(FIXTURES / "robust" / "make_models.py", "robust_make_models").build_all()


@pytest.fixture(scope="session")
def aisp_model(aisp_config: Any, aisp_device: str, robust_example_models: dict[str, dict[str, Path]]) -> Any:
    """The configured model, or the example digits MLP with its data, loaded through the settings."""
    from pytest_aisp.robust import model_under_test_from_settings

    settings = aisp_config
    if settings.model is None:
        files = robust_example_models["digits_mlp"]
        settings = dataclasses.replace(settings, model=files["torchscript"], data=files["data"])
    return model_under_test_from_settings(settings, device=aisp_device)


@pytest.fixture(scope="session")
def tabular_model(aisp_config: Any, aisp_device: str, robust_example_models: dict[str, dict[str, Path]]) -> Any:
    """The breast-cancer model: standardised features with per-feature bounds saved beside the data."""
    from pytest_aisp.robust import model_under_test_from_settings

    files = robust_example_models["cancer_mlp"]
    settings = dataclasses.replace(aisp_config, model=files["onnx"], data=files["data"])
    return model_under_test_from_settings(settings, device=aisp_device)


# --------------------------------------------------------------------------------------------------------------
# Poisoning, backdoors, extraction and membership
# --------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def poison_kit():
    """The known-answer script (models, data, training functions), with its files generated."""
    import torch

    torch.set_num_threads(1)
    module = _load_script(FIXTURES / "robust" / "make_poison_fixtures.py", "make_poison_fixtures")
    return module, module.make_all()


# --------------------------------------------------------------------------------------------------------------
# LLM endpoint: injection, jailbreaks, leakage, insecure output
# --------------------------------------------------------------------------------------------------------------


def _chat_app():
    """The Acme chat app module, found beside this file (examples/llm_app/app.py)."""
    return _load_script(HERE / "llm_app" / "app.py", "acme_chat_app")


@pytest.fixture(scope="session")
def chat_app():
    return _chat_app()


@pytest.fixture(scope="session")
def llm_endpoint(chat_app):
    """The hardened chat service, with the marker its server-side prompt carries declared as a canary
    and its live API key declared secret."""
    with chat_app.running(chat_app.AppConfig()) as url:
        yield LLMEndpoint(
            url=url + "/v1/chat/completions",
            session="user",
            canaries=(chat_app.SERVER_CANARY,),
            secrets=(chat_app.SERVER_API_KEY,),
        )


@pytest.fixture(scope="session")
def weak_chat(chat_app):
    """``weak_chat(family)``: an endpoint on a build with that one weakness switched on."""
    with contextlib.ExitStack() as stack:
        urls = {}

        def endpoint(family):
            if family not in urls:
                config = chat_app.AppConfig(weaknesses=frozenset({family}))
                urls[family] = stack.enter_context(chat_app.running(config))
            return LLMEndpoint(
                url=urls[family] + "/v1/chat/completions",
                session="user",
                canaries=(chat_app.SERVER_CANARY,),
                secrets=(chat_app.SERVER_API_KEY,),
            )

        yield endpoint


# --------------------------------------------------------------------------------------------------------------
# Text classifiers: adversarial edits, augmentation, bias
# --------------------------------------------------------------------------------------------------------------

# Real text classifiers made by fixtures/nlp/make_models.py (seeded, about a second).


@pytest.fixture(scope="session")
def nlp_models():
    return _load_script(FIXTURES / "nlp" / "make_models.py", "aisp_nlp_make_models")


@pytest.fixture(scope="session")
def sentiment_classifier(nlp_models):
    """The team's sentiment model: TF-IDF + logistic regression."""
    return nlp_models.sentiment_model()


@pytest.fixture(scope="session")
def sentiment_eval_set(nlp_models):
    """Held-out labelled review sentences."""
    return nlp_models.sentiment_test_set(40)


# --------------------------------------------------------------------------------------------------------------
# Images, audio and captions: invariance and cross-modal consistency
# --------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def multimodal_fixtures() -> ModuleType:
    """The fixture script, with its artifacts generated into fixtures/multimodal/generated/."""
    module = _load_script(FIXTURES / "multimodal" / "make_fixtures.py", "multimodal_fixtures")
    module.make_all()
    return module


@pytest.fixture(scope="session")
def mm_digit_images(multimodal_fixtures: ModuleType) -> tuple[np.ndarray, np.ndarray]:
    """Held-out digit images (N, 24, 24, 3) uint8 and their labels."""
    data = np.load(multimodal_fixtures.GENERATED / "digits_test.npz")
    return data["x"][:150], data["y"][:150]


@pytest.fixture(scope="session")
def mm_digit_classifier(multimodal_fixtures: ModuleType) -> Any:
    """The production digit classifier: trained with brightness and contrast augmentation."""
    return multimodal_fixtures.DigitsCNN(multimodal_fixtures.GENERATED / "digits_augmented.pt", "digits_augmented.pt")


@pytest.fixture(scope="session")
def mm_legacy_digit_classifier(multimodal_fixtures: ModuleType) -> Any:
    """The previous digit classifier, trained on clean images only (known to be brightness-sensitive)."""
    return multimodal_fixtures.DigitsCNN(multimodal_fixtures.GENERATED / "digits_plain.pt", "digits_plain.pt")


@pytest.fixture(scope="session")
def mm_tone_classifier(multimodal_fixtures: ModuleType) -> tuple[Any, np.ndarray, np.ndarray]:
    """The tone/chirp classifier with its held-out 8 kHz waveforms and labels."""
    data = np.load(multimodal_fixtures.GENERATED / "tones.npz")
    return (
        multimodal_fixtures.ToneClassifier(multimodal_fixtures.GENERATED / "tones.npz"),
        data["x"],
        data["y"],
    )


@pytest.fixture(scope="session")
def mm_image_caption_model(multimodal_fixtures: ModuleType, mm_digit_images: tuple[np.ndarray, np.ndarray]) -> Any:
    """The image + caption model with matching samples: (model, {"image": ..., "text": ...}, labels)."""
    x, y = mm_digit_images
    samples = {"image": x[:80], "text": multimodal_fixtures.captions_for(y[:80])}
    return multimodal_fixtures.load_image_caption_model(), samples, y[:80]


# --------------------------------------------------------------------------------------------------------------
# Supply chain: manifest, signature, provenance, pinning
# --------------------------------------------------------------------------------------------------------------

# The project under test: data, a training script, the model it trains and CI files, made by
# fixtures/supply/make_artifacts.py. At build time CI would run `aisp manifest create` and
# `aisp manifest sign`; here a session fixture does the same so the example runs anywhere.


@pytest.fixture(scope="session")
def supply_project(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A trained project with a signed manifest and a signed provenance statement."""
    from pytest_aisp.supply import (
        create_manifest,
        generate_keypair,
        record_provenance,
        save_manifest,
        sign_manifest,
    )

    make = _load_script(FIXTURES / "supply" / "make_artifacts.py", "supply_make_artifacts")
    base = tmp_path_factory.mktemp("supply")
    project = make.make_project(base / "project")
    private, public = generate_keypair(base / "release.pem", base / "release.pub.pem")
    provenance = base / "provenance.intoto.json"
    record_provenance(
        [sys.executable, "train.py"],
        materials=[project / "data", project / "train.py"],
        products=[project / "model"],
        output=provenance,
        key=private,
        root=project,
    )
    manifest = base / "aisp-manifest.json"
    save_manifest(create_manifest(project, manifest_path=manifest), manifest)
    sign_manifest(manifest, private)
    return {"root": project, "manifest": manifest, "pubkey": public, "provenance": provenance}


@pytest.fixture(scope="session")
def artifact_manifest(supply_project: dict):
    """Verified once per session; a team with a committed aisp-manifest.json needs no override."""
    from pytest_aisp.supply import verify_manifest

    return verify_manifest(supply_project["manifest"], pubkey=supply_project["pubkey"])


# --------------------------------------------------------------------------------------------------------------
# Runtime monitoring: recorded traffic through the detectors
# --------------------------------------------------------------------------------------------------------------

# Recorded traffic from a real model served behind the monitoring middleware.


@pytest.fixture(scope="session")
def monitor_traffic() -> dict:
    """Traffic logs (benign, flood, extraction, drift, adversarial, errors, prompt attacks) recorded by
    fixtures/monitor/make_traffic.py; made once, reused while the files exist."""
    script = _load_script(FIXTURES / "monitor" / "make_traffic.py", "example_make_traffic")
    generated = FIXTURES / "monitor" / "generated"
    paths = {name: generated / f"{name}.jsonl" for name in script.SCENARIOS}
    paths["reference"] = generated / "reference.npz"
    if not all(path.is_file() for path in paths.values()):
        paths.update(script.make_all(generated))
    return paths
