"""ONNX models with several outputs: every check reads the class scores, chosen one way.

The skl2onnx file is made as a user makes it: an MLP overfit on the first 300 digits (alpha=0, 2000
iterations), exported with ``zipmap=False``, so its first output is ``label`` and its second
``probabilities``. The torch.onnx file is the fixtures' digits MLP (one output, ``logits``).
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from pytest_aisp import config
from pytest_aisp.findings import AispError
from pytest_aisp.robust import as_classifier, evaluate_robustness
from pytest_aisp.robust._access import model_access
from pytest_aisp.robust.model import onnx_scores_output

ort = pytest.importorskip("onnxruntime")
skl2onnx = pytest.importorskip("skl2onnx")


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    return (digits.data / 16.0).astype(np.float32), digits.target.astype(np.int64)


def _overfit_mlp(x: np.ndarray, y: np.ndarray):
    from sklearn.neural_network import MLPClassifier

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return MLPClassifier(alpha=0, max_iter=2000, random_state=0).fit(x, y)


def _export(model, x: np.ndarray, path: Path, zipmap: bool = False) -> Path:
    onx = skl2onnx.to_onnx(model, x[:1], options={id(model): {"zipmap": zipmap}})
    path.write_bytes(onx.SerializeToString())
    return path


class SklOnnx:
    """The user's files: model.onnx (label first), m.npz (members), h.npz (held out)."""

    def __init__(self, root: Path) -> None:
        x, y = _digits()
        self.members, self.holdout = (x[:300], y[:300]), (x[300:600], y[300:600])
        self.sklearn = _overfit_mlp(*self.members)
        self.path = _export(self.sklearn, x, root / "model.onnx")
        self.zipmap_path = _export(self.sklearn, x, root / "zipmap.onnx", zipmap=True)
        np.savez(root / "m.npz", x=self.members[0], y=self.members[1])
        np.savez(root / "h.npz", x=self.holdout[0], y=self.holdout[1])
        self.root = root


@pytest.fixture(scope="module")
def skl(tmp_path_factory) -> SklOnnx:
    return SklOnnx(tmp_path_factory.mktemp("skl2onnx"))


@pytest.fixture
def configured():
    """Install settings for one test and put the session's back afterwards."""
    saved = config._current

    def install(**values):
        config.set_current_settings(config.Settings(**values))

    yield install
    config.set_current_settings(saved)


def _aisp(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-c", "import sys; from pytest_aisp.cli import main; sys.exit(main())",
                           *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}, timeout=300)


def test_skl2onnx_file_is_label_first(skl):
    names = [o.name for o in ort.InferenceSession(str(skl.path)).get_outputs()]
    assert names == ["label", "probabilities"]


def test_membership_cli_on_a_label_first_file_reads_the_probabilities(skl):
    """The false pass: the CLI used the label output (confidence AUC a constant 0.500) and exited 0."""
    done = _aisp("membership", "model.onnx", "--members", "m.npz", "--holdout", "h.npz", "--max-auc", "0.6",
                 cwd=skl.root)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "confidence AUC 0.500 (0.500-0.500)" not in done.stdout
    assert "AISP-ROBUST-MEMBERSHIP" in done.stdout


def test_the_file_and_the_probabilities_give_the_same_verdict(skl):
    from pytest_aisp.robust import evaluate_membership

    from_file = evaluate_membership(str(skl.path), skl.members, skl.holdout, max_auc=0.6)
    from_proba = evaluate_membership(skl.sklearn.predict_proba, skl.members, skl.holdout, max_auc=0.6)
    assert from_file.attacks["confidence"].auc == pytest.approx(from_proba.attacks["confidence"].auc, abs=0.01)
    assert from_file.attacks["confidence"].auc > 0.6 and not from_file.passed


def test_scores_output_is_chosen_automatically(skl):
    session = ort.InferenceSession(str(skl.path))
    assert onnx_scores_output(session) == "probabilities"
    x = skl.holdout[0][:50]
    assert np.allclose(as_classifier(skl.path).predict(x), skl.sklearn.predict_proba(x), atol=1e-5)


def test_zipmap_output_becomes_rows_in_class_order(skl):
    x = skl.holdout[0][:50]
    assert onnx_scores_output(ort.InferenceSession(str(skl.zipmap_path))) == "output_probability"
    assert np.allclose(as_classifier(skl.zipmap_path).predict(x), skl.sklearn.predict_proba(x), atol=1e-5)


def test_configuration_names_the_output(skl, configured, tmp_path):
    configured(onnx_output="label")
    with pytest.raises(AispError) as caught:
        evaluate_robustness(str(skl.path), skl.holdout, attack="square", eps=0.05, steps=5)
    message = str(caught.value)
    assert "has 2 outputs" in message and "reads 'label'" in message and 'onnx_output = "NAME"' in message
    configured(onnx_output="missing")
    with pytest.raises(AispError, match=r"no output named 'missing'.*label.*probabilities"):
        as_classifier(skl.path)
    # The keyword wins over the configuration.
    assert as_classifier(skl.path, onnx_output="probabilities").predict(skl.holdout[0][:3]).shape == (3, 10)


def test_pyproject_setting_reaches_the_cli(skl):
    (skl.root / "pyproject.toml").write_text('[tool.aisp]\nonnx_output = "label"\n')
    try:
        done = _aisp("membership", "model.onnx", "--members", "m.npz", "--holdout", "h.npz", cwd=skl.root)
    finally:
        (skl.root / "pyproject.toml").unlink()
    # Labels, as configured: the confidence attack sees one-hot rows.
    assert "confidence AUC 0.500" in done.stdout, done.stdout + done.stderr
    done = _aisp("membership", "model.onnx", "--members", "m.npz", "--holdout", "h.npz", cwd=skl.root,
                 env={"AISP_ONNX_OUTPUT": "nope"})
    assert done.returncode == 2 and "no output named 'nope'" in done.stderr


def _two_score_outputs(path: Path, names: tuple[str, str]) -> Path:
    """A linear model with logits and their softmax as two outputs, as a torch export with two returns."""
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], [names[0]]),
         helper.make_node("Softmax", [names[0]], [names[1]], axis=1)],
        "two_outputs",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info(names[0], TensorProto.FLOAT, ["N", 3]),
         helper.make_tensor_value_info(names[1], TensorProto.FLOAT, ["N", 3])],
        initializer=[weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return path


@pytest.mark.parametrize("names", [("logits", "probabilities"), ("a", "b")])
def test_ambiguous_outputs_are_an_error_never_a_guess(tmp_path, names):
    path = _two_score_outputs(tmp_path / "two.onnx", names)
    with pytest.raises(AispError) as caught:
        as_classifier(path)
    message = str(caught.value)
    assert "has 2 outputs" in message and "2 of them could hold class scores" in message
    assert all(name in message for name in names) and "onnx_output" in message
    assert as_classifier(path, onnx_output=names[1]).predict(np.ones((2, 4), np.float32)).shape == (2, 3)


# --- every adapter, without a wrapper ------------------------------------------------------------


@pytest.fixture(scope="module")
def torch_onnx(robust_models) -> tuple[Path, np.ndarray, np.ndarray]:
    """The fixtures' torch.onnx export of the digits MLP, its held-out data and its logits."""
    import torch

    files = robust_models["digits_mlp"]
    with np.load(files["data"]) as archive:
        x, y = archive["x"], archive["y"]
    with torch.no_grad():
        logits = torch.jit.load(str(files["torchscript"]))(torch.from_numpy(x)).numpy()
    return files["onnx"], x, y, logits


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_every_adapter_reads_the_skl2onnx_probabilities(skl):
    from pytest_aisp.multimodal.invariance import predict_labels
    from pytest_aisp.robust.model import as_score_function

    x = skl.holdout[0]
    expected = skl.sklearn.predict_proba(x)
    # robust (evasion), membership / extraction / poisoning (model_access), multimodal (as_score_function)
    assert np.allclose(as_classifier(skl.path).predict(x), expected, atol=1e-5)
    assert np.allclose(model_access(str(skl.path), 10).predict_proba(x), expected, atol=1e-5)
    session = ort.InferenceSession(str(skl.path))
    assert np.allclose(model_access(session, 10).predict_proba(x), expected, atol=1e-5)
    images = x.reshape(-1, 8, 8, 1)  # channels-last images into a model trained on 64 flat features
    assert np.array_equal(predict_labels(as_score_function(session), images), expected.argmax(axis=1))


def test_every_check_runs_on_both_exports(skl, torch_onnx):
    from pytest_aisp.multimodal import evaluate_invariance
    from pytest_aisp.robust import evaluate_extraction, evaluate_membership

    path, x, y, logits = torch_onnx
    for model, (xs, ys), expected in ((str(skl.path), skl.holdout, skl.sklearn.predict_proba(skl.holdout[0])),
                                      (path, (x, y), _softmax(logits))):
        robust = evaluate_robustness(model, (xs, ys), attack="square", eps=0.05, steps=20)
        assert robust.clean_acc == pytest.approx(float(np.mean(expected.argmax(1) == ys)))
        assert np.allclose(model_access(model, 10).predict_proba(xs), expected, atol=1e-5)
        half = len(xs) // 2
        membership = evaluate_membership(model, (xs[:half], ys[:half]), (xs[half:], ys[half:]), n_bootstrap=20)
        assert membership.attacks["confidence"].auc_high > membership.attacks["confidence"].auc_low
        extraction = evaluate_extraction(model, thief_data=xs[:half], holdout_data=(xs[half:], ys[half:]),
                                         query_budget=100, epochs=20, hardening=())
        assert extraction.victim_accuracy == pytest.approx(float(np.mean(expected[half:].argmax(1) == ys[half:])))
        images = np.clip(xs[:40].reshape(-1, 8, 8, 1), 0, 1)
        invariance = evaluate_invariance(model, images, perturbations=["image:brightness"], severities=(0.05,),
                                         labels=ys[:40])
        assert invariance.clean_accuracy == pytest.approx(float(np.mean(expected[:40].argmax(1) == ys[:40])))
        assert not [f for f in invariance.findings if f.rule_id == "AISP-MM-UNCHECKED"]


def _torch_onnx_export(x_train: np.ndarray, y_train: np.ndarray, path: Path) -> Path:
    """A softmax regression trained in torch, exported with torch.onnx (one output, logits)."""
    import torch

    torch.manual_seed(0)
    model = torch.nn.Linear(x_train.shape[1], 10)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    for _ in range(150):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(xt), yt).backward()
        optimizer.step()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (xt[:2],), str(path), dynamo=False, input_names=["x"],
                          output_names=["logits"], dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}})
    return path


@pytest.mark.parametrize("exporter", ["skl2onnx", "torch.onnx"])
def test_poisoning_takes_a_train_fn_that_returns_an_onnx_session(tmp_path, exporter):
    from pytest_aisp.robust import evaluate_poisoning

    x, y = _digits()
    calls = []

    def train_fn(x_train: np.ndarray, y_train: np.ndarray):
        path = tmp_path / f"trained{len(calls)}.onnx"
        if exporter == "skl2onnx":
            from sklearn.linear_model import LogisticRegression

            _export(LogisticRegression(max_iter=300).fit(x_train, y_train), x_train, path)  # label first
        else:
            _torch_onnx_export(x_train, y_train, path)
        calls.append(path)
        return ort.InferenceSession(str(path))

    result = evaluate_poisoning(train_fn, ((x[:1000], y[:1000]), (x[1000:1400], y[1000:1400])),
                                attack="label_flip", rate=0.05)
    assert len(calls) == 2 and result.clean_accuracy > 0.85
