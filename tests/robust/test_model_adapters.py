"""as_classifier over torch, scikit-learn, ONNX, callables and a real HTTP endpoint; bad input."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from pytest_aisp.findings import AispError, BackendMissing
from pytest_aisp.robust import (
    ModelUnderTest,
    RemoteEndpoint,
    SageMakerEndpoint,
    as_classifier,
    evaluate_robustness,
)
from pytest_aisp.robust.model import extract_path, fill_template

torch = pytest.importorskip("torch")


def test_torch_module_is_white_box_and_left_as_it_was(digits_mlp):
    module = digits_mlp.module
    module.train()  # the caller's mode, to be restored
    module[0].weight.requires_grad_(True)
    module[2].weight.requires_grad_(False)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    result = evaluate_robustness(module, digits_mlp.data, attack="pgd", eps=0.05, steps=5)
    assert module.training and all(m.training for m in module.modules())
    assert module[0].weight.requires_grad and not module[2].weight.requires_grad
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())
    assert all(p.grad is None for p in module.parameters())
    module.eval()
    module.requires_grad_(True)
    assert result.clean_acc > 0.9 and as_classifier(module).white_box


def test_mode_is_restored_when_the_attack_fails(digits_mlp):
    module = digits_mlp.module
    module.train()
    with pytest.raises(AispError):
        evaluate_robustness(module, (digits_mlp.x[:, :10], digits_mlp.y), attack="pgd")  # wrong shape
    assert module.training
    module.eval()


def test_sklearn_classifier_is_attacked_black_box(digits_mlp):
    from sklearn.linear_model import LogisticRegression

    x, y = digits_mlp.x, digits_mlp.y
    estimator = LogisticRegression(max_iter=300).fit(x, y)
    classifier = as_classifier(estimator)
    assert classifier.kind == "sklearn" and not classifier.white_box and classifier.nb_classes == 10
    result = evaluate_robustness(estimator, (x[:60], y[:60]), attack="square", eps=0.15, steps=50)
    assert result.robust_acc < result.clean_acc
    with pytest.raises(AispError, match="needs gradients"):
        evaluate_robustness(estimator, (x, y), attack="pgd")


def test_onnx_session_gives_the_same_clean_accuracy_as_torch(digits_cnn):
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(digits_cnn.files["onnx"]), providers=["CPUExecutionProvider"])
    classifier = as_classifier(session)
    assert classifier.kind == "onnx" and classifier.input_shape == (1, 8, 8)
    black = evaluate_robustness(session, digits_cnn.data, attack="noise", eps=0.0, steps=1)
    white = evaluate_robustness(digits_cnn.module, digits_cnn.data, attack="noise", eps=0.0, steps=1)
    assert black.clean_acc == white.clean_acc
    square = evaluate_robustness(session, (digits_cnn.x[:60], digits_cnn.y[:60]), attack="square", eps=0.2,
                                 steps=50)
    assert square.robust_acc < square.clean_acc


def test_model_file_path_is_loaded(digits_cnn):
    path = str(digits_cnn.files["torchscript"])
    result = evaluate_robustness(path, digits_cnn.data, attack="fgsm", eps=0.1)
    reference = evaluate_robustness(digits_cnn.module, digits_cnn.data, attack="fgsm", eps=0.1)
    assert result.robust_acc == pytest.approx(reference.robust_acc, abs=0.01)


def test_callable_returning_probabilities(digits_mlp):
    module = digits_mlp.module

    def predict(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.softmax(module(torch.from_numpy(batch)), dim=1).numpy()

    result = evaluate_robustness(predict, digits_mlp.data, attack="noise", eps=0.05, steps=2)
    assert result.clean_acc > 0.9


# --- a real endpoint on 127.0.0.1 ------------------------------------------------------------


class _Server:
    def __init__(self, module, fail: bool = False):
        self.calls: list[tuple[float, int]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                rows = np.asarray(body["instances"], dtype=np.float32)
                outer.calls.append((time.monotonic(), len(rows)))
                if fail:
                    self.send_response(503)
                    self.end_headers()
                    self.wfile.write(b"overloaded")
                    return
                with torch.no_grad():
                    scores = torch.softmax(module(torch.from_numpy(rows)), dim=1).numpy()
                answer = json.dumps({"outputs": [{"scores": scores.tolist()}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/invocations"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_remote_endpoint_is_batched_rate_limited_and_attacked(digits_mlp):
    x, y = digits_mlp.x[:40], digits_mlp.y[:40]
    with _Server(digits_mlp.module) as server:
        endpoint = RemoteEndpoint(url=server.url, request_template={"instances": "$inputs"},
                                  scores_path="$.outputs[0].scores", batch_size=16, max_requests_per_s=50)
        result = evaluate_robustness(endpoint, (x, y), attack="square", eps=0.2, steps=5)
    sizes = [n for _, n in server.calls]
    assert max(sizes) <= 16 and sizes[:3] == [16, 16, 8]
    times = [t for t, _ in server.calls]
    # Requests leave at most 50 per second (arrival times jitter a little around that).
    assert times[-1] - times[0] >= 0.9 * (len(times) - 1) / 50
    local = evaluate_robustness(digits_mlp.module, (x, y), attack="noise", eps=0.0, steps=1)
    assert result.clean_acc == local.clean_acc and result.robust_acc < result.clean_acc


def test_endpoint_errors_are_infrastructure_errors(digits_mlp):
    with _Server(digits_mlp.module, fail=True) as server, pytest.raises(AispError, match="HTTP 503"):
        evaluate_robustness(RemoteEndpoint(server.url, {"instances": "$inputs"}), digits_mlp.data,
                            attack="noise")
    with pytest.raises(AispError, match="cannot reach"):
        evaluate_robustness(server.url, digits_mlp.data, attack="noise")


def test_sagemaker_needs_boto3():
    pytest.importorskip("numpy")
    try:
        import boto3  # noqa: F401
    except ImportError:
        with pytest.raises(BackendMissing, match="boto3"):
            as_classifier(SageMakerEndpoint("my-endpoint"))
    else:  # pragma: no cover - boto3 present: the adapter builds without calling AWS
        assert as_classifier(SageMakerEndpoint("my-endpoint", region="us-east-1")).kind == "sagemaker"


def test_json_paths_and_templates():
    doc = {"outputs": [{"scores": [[0.1, 0.9]]}], "items": [{"p": [1, 2]}, {"p": [3, 4]}], "a-b": {"c": 1}}
    assert extract_path(doc, "$.outputs[0].scores") == [[0.1, 0.9]]
    assert extract_path(doc, "$.items[*].p") == [[1, 2], [3, 4]]
    assert extract_path(doc, "$['a-b'].c") == 1
    with pytest.raises(AispError, match="does not match"):
        extract_path(doc, "$.missing")
    assert fill_template({"a": ["$inputs", 1], "b": "x"}, [[0]]) == {"a": [[[0]], 1], "b": "x"}


# --- bad input -------------------------------------------------------------------------------


def test_shape_mismatch_is_an_aisp_error(digits_cnn, digits_mlp):
    with pytest.raises(AispError, match="shape"):
        evaluate_robustness(digits_cnn.module, digits_mlp.data, attack="fgsm")
    with pytest.raises(AispError, match="labels"):
        evaluate_robustness(digits_mlp.module, (digits_mlp.x, digits_mlp.y[:-1]))


def test_labels_out_of_range_are_an_aisp_error(linear_binary):
    y = linear_binary.y.copy()
    y[0] = 5
    with pytest.raises(AispError, match="out of range"):
        evaluate_robustness(linear_binary.module, (linear_binary.x, y))
    with pytest.raises(AispError, match="class indices"):
        evaluate_robustness(linear_binary.module, (linear_binary.x, y - 10))


def test_nan_outputs_are_an_aisp_error(digits_mlp):
    def broken(batch):
        return np.full((len(batch), 10), np.nan)

    with pytest.raises(AispError, match="NaN"):
        evaluate_robustness(broken, digits_mlp.data, attack="noise")
    with pytest.raises(AispError, match="NaN"):
        x = digits_mlp.x.copy()
        x[0, 0] = np.nan
        evaluate_robustness(digits_mlp.module, (x, digits_mlp.y))


def test_a_model_that_is_not_a_classifier_is_an_aisp_error(digits_mlp):
    from sklearn.linear_model import LinearRegression

    with pytest.raises(AispError, match="predict_proba"):
        as_classifier(LinearRegression().fit(digits_mlp.x, digits_mlp.y))
    with pytest.raises(AispError, match="one score per"):
        evaluate_robustness(torch.nn.Linear(64, 1), digits_mlp.data)
    with pytest.raises(AispError, match="cannot attack"):
        as_classifier(42)
    with pytest.raises(AispError, match="unknown attack"):
        evaluate_robustness(digits_mlp.module, digits_mlp.data, attack="nope")
    with pytest.raises(AispError, match="eps"):
        evaluate_robustness(digits_mlp.module, digits_mlp.data, eps=-1)
    with pytest.raises(AispError, match="no evaluation data"):
        evaluate_robustness(ModelUnderTest(as_classifier(digits_mlp.module)))


def test_data_loader_and_tensors_are_accepted(digits_mlp):
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(digits_mlp.x), torch.from_numpy(digits_mlp.y))
    loader = torch.utils.data.DataLoader(dataset, batch_size=100)
    from_loader = evaluate_robustness(digits_mlp.module, loader, attack="fgsm", eps=0.05)
    from_arrays = evaluate_robustness(digits_mlp.module, digits_mlp.data, attack="fgsm", eps=0.05)
    assert from_loader.robust_acc == from_arrays.robust_acc
