"""Models under attack: one adapter over torch, scikit-learn, ONNX, callables and remote endpoints.

``as_classifier`` turns what a team has into a :class:`Classifier`: a ``predict`` function from a
numpy batch to class scores (logits or probabilities), the input bounds, and, for torch modules, the
module itself so gradient attacks run white-box. Everything else is black-box. ``ModelUnderTest``
pairs a classifier with its evaluation data; the ``aisp_model`` fixture builds one from the settings.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import sys
import threading
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from pytest_aisp.backends import require
from pytest_aisp.findings import AispError

ArrayLike = Any
Bounds = tuple[Any, Any] | None

INPUTS_PLACEHOLDER = "$inputs"
DEFAULT_BATCH = 256


# --- remote endpoints ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RemoteEndpoint:
    """An HTTP inference endpoint that answers JSON.

    ``request_template`` is the JSON body with the string ``"$inputs"`` where the batch goes (as
    nested lists); ``scores_path`` is a JSONPath-like path to the scores in the answer, such as
    ``$.predictions`` or ``$.outputs[0].scores`` or ``$.results[*].probs``. Requests carry at most
    ``batch_size`` inputs and at most ``max_requests_per_s`` are sent per second.
    """

    url: str
    request_template: Any = field(default_factory=lambda: {"inputs": INPUTS_PLACEHOLDER})
    scores_path: str = "$.scores"
    headers: Mapping[str, str] = field(default_factory=dict)
    batch_size: int = 64
    max_requests_per_s: float | None = None
    timeout_s: float = 30.0


@dataclass(frozen=True)
class SageMakerEndpoint:
    """An Amazon SageMaker endpoint, called through boto3 (``pip install boto3``)."""

    name: str
    region: str | None = None
    request_template: Any = field(default_factory=lambda: {"instances": INPUTS_PLACEHOLDER})
    scores_path: str = "$.predictions"
    content_type: str = "application/json"
    batch_size: int = 64
    max_requests_per_s: float | None = None


_PATH_TOKEN = re.compile(r"\.([A-Za-z_][\w-]*)|\[(\d+|\*)\]|\[['\"]([^'\"]+)['\"]\]")


def extract_path(document: Any, path: str) -> Any:
    """The value at ``path`` (``$.a.b[0]``, ``$.items[*].score``, ``$['key']``) in a JSON document."""
    text = path.strip()
    if text.startswith("$"):
        text = text[1:]
    if text and not text.startswith((".", "[")):
        text = "." + text
    position, values, fan_out = 0, [document], False
    while position < len(text):
        match = _PATH_TOKEN.match(text, position)
        if match is None:
            raise AispError(f"scores path {path!r} is not understood at {text[position:]!r}; "
                            "use a path such as $.predictions or $.outputs[0].scores or $.items[*].probs")
        key, index, quoted = match.groups()
        next_values = []
        for value in values:
            try:
                if index == "*":
                    next_values.extend(value)
                elif index is not None:
                    next_values.append(value[int(index)])
                else:
                    next_values.append(value[key if key is not None else quoted])
            except (KeyError, IndexError, TypeError):
                shown = json.dumps(document)[:200]
                raise AispError(f"scores path {path!r} does not match the answer {shown}") from None
        fan_out = fan_out or index == "*"
        values = next_values
        position = match.end()
    return values if fan_out else values[0]


def fill_template(template: Any, inputs: list[Any]) -> Any:
    """A copy of ``template`` with every ``"$inputs"`` string replaced by ``inputs``."""
    if isinstance(template, str):
        return inputs if template == INPUTS_PLACEHOLDER else template
    if isinstance(template, Mapping):
        return {k: fill_template(v, inputs) for k, v in template.items()}
    if isinstance(template, (list, tuple)):
        return [fill_template(v, inputs) for v in template]
    return template


class _RateLimiter:
    """At most ``per_second`` calls per second, across threads."""

    def __init__(self, per_second: float | None) -> None:
        self._interval = 1.0 / per_second if per_second else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self._interval:
            return
        with self._lock:
            now = time.monotonic()
            if self._next > now:
                time.sleep(self._next - now)
                now = self._next
            self._next = now + self._interval


def _batched_remote(send: Callable[[list[Any]], Any], scores_path: str, batch_size: int,
                    per_second: float | None, where: str) -> Callable[[np.ndarray], np.ndarray]:
    limiter = _RateLimiter(per_second)

    def predict(x: np.ndarray) -> np.ndarray:
        parts = []
        for start in range(0, len(x), max(1, batch_size)):
            chunk = x[start:start + batch_size]
            limiter.wait()
            answer = send(chunk.tolist())
            scores = np.asarray(extract_path(answer, scores_path), dtype=np.float64)
            if scores.ndim == 1 and len(chunk) == 1:
                scores = scores[None, :]
            if scores.ndim != 2 or scores.shape[0] != len(chunk):
                raise AispError(f"{where} returned scores of shape {scores.shape} for {len(chunk)} inputs; "
                                "point scores_path at a list of per-class score lists, one per input")
            parts.append(scores)
        return np.concatenate(parts) if parts else np.zeros((0, 0))

    return predict


def _http_predict(endpoint: RemoteEndpoint) -> Callable[[np.ndarray], np.ndarray]:
    def send(inputs: list[Any]) -> Any:
        body = json.dumps(fill_template(endpoint.request_template, inputs)).encode()
        headers = {"Content-Type": "application/json", **dict(endpoint.headers)}
        request = urllib.request.Request(endpoint.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=endpoint.timeout_s) as response:
                return json.loads(response.read().decode())
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:200].decode(errors="replace")
            raise AispError(f"endpoint {endpoint.url} answered HTTP {exc.code}: {detail}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            raise AispError(f"cannot reach endpoint {endpoint.url}: {exc}; check the URL and that it is up"
                            ) from None
        except json.JSONDecodeError as exc:
            raise AispError(f"endpoint {endpoint.url} did not answer JSON: {exc}") from None

    return _batched_remote(send, endpoint.scores_path, endpoint.batch_size, endpoint.max_requests_per_s,
                           endpoint.url)


def _sagemaker_predict(endpoint: SageMakerEndpoint) -> Callable[[np.ndarray], np.ndarray]:
    boto3 = require("boto3", "sagemaker", "SageMaker endpoints are called through boto3")
    client = boto3.client("sagemaker-runtime", region_name=endpoint.region)

    def send(inputs: list[Any]) -> Any:
        body = json.dumps(fill_template(endpoint.request_template, inputs))
        try:
            response = client.invoke_endpoint(EndpointName=endpoint.name, ContentType=endpoint.content_type,
                                              Body=body)
            return json.loads(response["Body"].read().decode())
        except Exception as exc:  # botocore raises many types; all mean the endpoint could not answer
            raise AispError(f"SageMaker endpoint {endpoint.name} failed: {exc}") from None

    return _batched_remote(send, endpoint.scores_path, endpoint.batch_size, endpoint.max_requests_per_s,
                           f"sagemaker:{endpoint.name}")


# --- the classifier -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Classifier:
    """A model ready to attack.

    ``predict`` maps a float32 numpy batch to a 2-D array of class scores (logits or
    probabilities). ``module`` is the torch module for white-box (gradient) attacks, else None.
    ``lower``/``upper`` are the input bounds, scalars or per-feature arrays.
    """

    kind: str
    predict: Callable[[np.ndarray], np.ndarray]
    nb_classes: int | None = None
    input_shape: tuple[int, ...] | None = None
    lower: Any = 0.0
    upper: Any = 1.0
    module: Any = None
    preprocess: Callable[[Any], Any] | None = None
    name: str = ""
    source: Any = field(default=None, repr=False)  # the object adapted (ART's scikit-learn wrappers use it)
    outputs_note: str = ""  # for a model with several outputs: which exist, which is read, how to choose

    @property
    def white_box(self) -> bool:
        """True when gradients are available (a torch module)."""
        return self.module is not None

    def bounds_for(self, shape: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """The lower and upper bounds broadcast to one input of ``shape``, as float32 arrays."""
        try:
            lower = np.broadcast_to(np.asarray(self.lower, dtype=np.float32), tuple(shape)).copy()
            upper = np.broadcast_to(np.asarray(self.upper, dtype=np.float32), tuple(shape)).copy()
        except ValueError:
            raise AispError(f"bounds of shape {np.shape(self.lower)}/{np.shape(self.upper)} do not fit "
                            f"inputs of shape {tuple(shape)}; give scalars or one value per feature"
                            ) from None
        if np.any(lower > upper):
            raise AispError("bounds: some lower bounds exceed their upper bounds")
        return lower, upper


def _torch_predict(module: Any, preprocess: Callable[[Any], Any] | None,
                   batch_size: int = DEFAULT_BATCH) -> Callable[[np.ndarray], np.ndarray]:
    import torch

    def predict(x: np.ndarray) -> np.ndarray:
        device = module_device(module)
        outputs = []
        with attack_mode(module), torch.no_grad():
            for start in range(0, len(x), batch_size):
                batch = torch.as_tensor(x[start:start + batch_size], dtype=torch.float32, device=device)
                if preprocess is not None:
                    batch = preprocess(batch)
                outputs.append(call_module(module, batch).detach().float().cpu().numpy())
        return np.concatenate(outputs) if outputs else np.zeros((0, 0), dtype=np.float32)

    return predict


def call_module(module: Any, batch: Any) -> Any:
    """``module(batch)``, with shape errors turned into an ``AispError`` that says what to fix."""
    try:
        out = module(batch)
    except (RuntimeError, ValueError, TypeError) as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AispError(f"the model rejected inputs of shape {tuple(batch.shape)}: {first_line}; "
                        "check input_shape and the data's shape") from None
    if isinstance(out, (tuple, list)):
        out = out[0]
    if isinstance(out, Mapping):
        out = out.get("logits", next(iter(out.values())))
    return out


def module_device(module: Any) -> Any:
    """The device of the module's first parameter or buffer (CPU when it has none)."""
    import torch

    first = next(module.parameters(), None)
    if first is None:
        first = next(module.buffers(), None)
    return first.device if first is not None else torch.device("cpu")


@contextlib.contextmanager
def attack_mode(module: Any) -> Iterator[Any]:
    """Eval mode and frozen parameters for the attack; the training flags and ``requires_grad``
    of every parameter are put back afterwards, whatever happens."""
    if module is None:
        yield module
        return
    modes = [(m, m.training) for m in module.modules()] if hasattr(module, "modules") else []
    grads = [(p, p.requires_grad) for p in module.parameters()] if hasattr(module, "parameters") else []
    try:
        if hasattr(module, "eval"):
            module.eval()
        for parameter, _ in grads:
            parameter.requires_grad_(False)
        yield module
    finally:
        for sub, training in modes:
            sub.training = training
        for parameter, flag in grads:
            parameter.requires_grad_(flag)


# --- ONNX ---------------------------------------------------------------------------------------

# Output names that say "class scores": skl2onnx's probabilities / output_probability, logits, scores.
_SCORE_NAMES = re.compile(r"prob|logit|score", re.IGNORECASE)
_FLOAT_TENSORS = frozenset({"tensor(float)", "tensor(double)", "tensor(float16)"})
_ONNX_HOW_TO_CHOOSE = ('onnx_output = "NAME" in [tool.aisp], --aisp-onnx-output NAME, AISP_ONNX_OUTPUT=NAME, '
                       'or as_classifier(model, onnx_output="NAME")')


def _describe_onnx_outputs(outputs: Sequence[Any]) -> str:
    return ", ".join(f"{o.name} ({o.type} {list(o.shape) if o.shape is not None else '?'})" for o in outputs)


def _holds_scores(output: Any) -> bool:
    """A float tensor of rank 2 (N, classes), or skl2onnx's ZipMap (a list of {class: probability})."""
    if output.type in _FLOAT_TENSORS:
        return output.shape is not None and len(output.shape) == 2
    return output.type.startswith("seq(map(") and "tensor(float)" in output.type


def onnx_scores_output(session: Any, onnx_output: str | None = None, *, where: str = "the ONNX model") -> str:
    """The name of the output of an onnxruntime ``session`` that holds class scores.

    ``onnx_output`` names it explicitly (it must exist); otherwise a model with one output uses it, and a
    model with several uses the one float ``(N, classes)`` tensor (or ZipMap), or among several such the
    one named like probabilities/logits/scores. Anything else is ambiguous and raises ``AispError``
    listing the outputs: the choice is never guessed. Every check that runs an ONNX model reads its
    scores through this one choice.
    """
    outputs = list(session.get_outputs())
    names = [o.name for o in outputs]
    if onnx_output is not None:
        if onnx_output not in names:
            raise AispError(f"{where} has no output named {onnx_output!r} (onnx_output); its outputs are "
                            f"{_describe_onnx_outputs(outputs)}; set onnx_output to the one holding class scores")
        return onnx_output
    if len(outputs) == 1:
        return names[0]
    candidates = [o for o in outputs if _holds_scores(o)]
    if len(candidates) > 1:
        named = [o for o in candidates if _SCORE_NAMES.search(o.name)]
        candidates = named if len(named) == 1 else candidates
    if len(candidates) == 1:
        return candidates[0].name
    reason = ("none of them is a float (N, classes) tensor of class scores" if not candidates else
              f"{len(candidates)} of them could hold class scores")
    raise AispError(f"{where} has {len(outputs)} outputs, {_describe_onnx_outputs(outputs)}, and {reason}; "
                    f"name the one with the class scores: {_ONNX_HOW_TO_CHOOSE}")


def configured_onnx_output() -> str | None:
    """``onnx_output`` from the configuration in force ([tool.aisp], --aisp-onnx-output, AISP_ONNX_OUTPUT)."""
    from pytest_aisp.config import current_settings

    return current_settings().onnx_output


def _onnx_input_dtype(type_name: str) -> Any:
    return {"tensor(double)": np.float64, "tensor(float16)": np.float16}.get(type_name, np.float32)


def _onnx_rows(value: Any, output: Any) -> np.ndarray:
    """An output as an array; a ZipMap (list of {class: probability}) becomes rows in class order."""
    if isinstance(value, list) and value and isinstance(value[0], Mapping):
        keys = sorted(value[0])
        return np.asarray([[row[k] for k in keys] for row in value], dtype=np.float64)
    return np.asarray(value)


def _onnx_predict(session: Any, onnx_output: str | None, where: str
                  ) -> tuple[Callable[[np.ndarray], np.ndarray], tuple[int, ...] | None, str]:
    first = session.get_inputs()[0]
    shape = tuple(first.shape[1:]) if first.shape else ()
    input_shape = tuple(int(d) for d in shape) if shape and all(isinstance(d, int) for d in shape) else None
    dtype = _onnx_input_dtype(first.type)
    outputs = list(session.get_outputs())
    chosen = onnx_scores_output(session, onnx_output, where=where)
    output = next(o for o in outputs if o.name == chosen)
    # Said when the chosen output turns out not to hold scores: which outputs exist and how to pick one.
    note = "" if len(outputs) == 1 else (
        f"{where} has {len(outputs)} outputs, {_describe_onnx_outputs(outputs)}, and this reads {chosen!r}; "
        f"name the one with the class scores: {_ONNX_HOW_TO_CHOOSE}")

    def predict(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=dtype)
        if input_shape is not None and x.shape[1:] != input_shape and x[0].size == int(np.prod(input_shape)):
            x = x.reshape((len(x), *input_shape))  # e.g. images into a model trained on flat features
        try:
            parts = []
            for start in range(0, len(x), DEFAULT_BATCH):
                (value,) = session.run([chosen], {first.name: x[start:start + DEFAULT_BATCH]})
                parts.append(_onnx_rows(value, output))
            return np.concatenate(parts)
        except Exception as exc:  # onnxruntime raises its own exception types for bad inputs
            first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise AispError(f"the ONNX model rejected inputs of shape {x.shape}: {first_line}") from None

    return predict, input_shape, note


def _is_torch_module(model: Any) -> bool:
    # A torch module can exist only once torch is imported: never import it just to check.
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(model, torch.nn.Module)


def as_classifier(
    model: Any,
    *,
    nb_classes: int | None = None,
    input_shape: Sequence[int] | None = None,
    bounds: Bounds = (0.0, 1.0),
    preprocess: Callable[[Any], Any] | None = None,
    device: str | None = None,
    name: str = "",
    onnx_output: str | None = None,
    model_class: str | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
) -> Classifier:
    """Adapt ``model`` for attacks.

    Accepted: a torch ``nn.Module`` (white-box), a scikit-learn estimator with ``predict_proba``, an
    onnxruntime ``InferenceSession``, a :class:`RemoteEndpoint` / ``http(s)://`` URL, a
    :class:`SageMakerEndpoint`, a path to a ``.pt``/``.onnx`` file, an existing :class:`Classifier`
    or ``ModelUnderTest``, or any callable from a numpy batch to scores (black-box).
    ``bounds`` are the valid input range, scalars or per-feature arrays (None for unbounded).
    ``preprocess`` (torch models) runs inside the model call, e.g. normalisation. ``onnx_output`` names
    the output of an ONNX model that holds class scores (default: the configured ``onnx_output``, else
    chosen from the file, see :func:`onnx_scores_output`). ``model_class`` (``"package.module:Class"``) and
    ``model_kwargs`` build the architecture for a file that holds weights only (a state_dict or safetensors).
    """
    if isinstance(model, ModelUnderTest):
        return model.classifier
    lower, upper = (-np.inf, np.inf) if bounds is None else bounds
    shape = tuple(int(d) for d in input_shape) if input_shape is not None else None
    common = dict(nb_classes=nb_classes, input_shape=shape, lower=lower, upper=upper, name=name)
    if isinstance(model, Classifier):
        return model
    if isinstance(model, (str, Path)) and str(model).startswith(("http://", "https://")):
        model = RemoteEndpoint(url=str(model))
    if isinstance(model, (str, Path)):
        path = Path(model)
        if not path.is_file():
            raise AispError(f"model file {path} does not exist")
        from pytest_aisp.config import current_settings

        settings = current_settings()
        # The configured architecture applies to a weights-only file; one given here must fit the file.
        loaded = _load_model(path, device or "cpu", policy=dict(settings.section("scan")) or None,
                             model_class=model_class or settings.model_class,
                             model_kwargs=model_kwargs if model_class else settings.model_kwargs,
                             rootdir=settings.rootdir, fail_on=_configured_fail_on(settings),
                             class_required=model_class is not None)
        return as_classifier(loaded, preprocess=preprocess, device=device, nb_classes=nb_classes,
                             input_shape=input_shape, bounds=bounds, name=name or str(path),
                             onnx_output=onnx_output)
    if isinstance(model, RemoteEndpoint):
        return Classifier(kind="http", predict=_http_predict(model), **{**common, "name": name or model.url})
    if isinstance(model, SageMakerEndpoint):
        return Classifier(kind="sagemaker", predict=_sagemaker_predict(model),
                          **{**common, "name": name or f"sagemaker:{model.name}"})
    if _is_torch_module(model):
        module = model
        if device is not None:
            import torch

            if module_device(module) != torch.device(device):
                # A copy on the test's device: the caller's module is never moved or changed.
                module = copy.deepcopy(module).to(device)
        return Classifier(kind="torch", predict=_torch_predict(module, preprocess), module=module,
                          preprocess=preprocess, **{**common, "name": name or type(model).__name__})
    if hasattr(model, "predict_proba") and hasattr(model, "fit"):
        classes = getattr(model, "classes_", None)
        if nb_classes is None and classes is not None:
            common["nb_classes"] = len(classes)
        if shape is None and getattr(model, "n_features_in_", None):
            common["input_shape"] = (int(model.n_features_in_),)
        return Classifier(kind="sklearn", predict=_sklearn_predict(model), source=model,
                          **{**common, "name": name or type(model).__name__})
    if hasattr(model, "fit") and hasattr(model, "predict"):
        raise AispError(f"{type(model).__name__} has no predict_proba: attacks need class scores; use a "
                        "classifier with predict_proba (e.g. SVC(probability=True)) or wrap a score function")
    if type(model).__name__ == "InferenceSession" and hasattr(model, "get_inputs"):
        where = name or "the ONNX model"
        chosen = onnx_output if onnx_output is not None else configured_onnx_output()
        predict, onnx_shape, note = _onnx_predict(model, chosen, where)
        if shape is None:
            common["input_shape"] = onnx_shape
        return Classifier(kind="onnx", predict=predict, source=model, outputs_note=note,
                          **{**common, "name": name or "onnx"})
    if callable(model):
        def predict(x: np.ndarray) -> np.ndarray:
            return np.asarray(_to_numpy(model(x)), dtype=np.float64)

        return Classifier(kind="callable", predict=predict,
                          **{**common, "name": name or getattr(model, "__name__", "callable")})
    raise AispError(f"cannot attack a {type(model).__name__}: give a torch nn.Module, a scikit-learn "
                    "classifier with predict_proba, an onnxruntime InferenceSession, an endpoint URL or a "
                    "callable returning class scores")


@dataclass(frozen=True)
class ScoreFunction:
    """A model as a plain function from a numpy batch to its outputs, with the model's name."""

    predict: Callable[[np.ndarray], np.ndarray]
    name: str

    def __call__(self, batch: Any) -> np.ndarray:
        return self.predict(np.asarray(batch))


def as_score_function(model: Any, *, onnx_output: str | None = None) -> Callable[[Any], Any]:
    """``model`` itself when it is callable; otherwise (an ONNX session or file, a model file, an endpoint
    URL, a scikit-learn estimator, a ``Classifier``) a function that runs it through :func:`as_classifier`,
    so checks that take a callable read ONNX outputs through the same choice as the attacks."""
    if callable(model):
        return model
    classifier = as_classifier(model, bounds=None, onnx_output=onnx_output)
    return ScoreFunction(classifier.predict, classifier.name or classifier.kind)


def _sklearn_predict(estimator: Any) -> Callable[[np.ndarray], np.ndarray]:
    def predict(x: np.ndarray) -> np.ndarray:
        flat = x.reshape(len(x), -1)
        return np.asarray(estimator.predict_proba(flat), dtype=np.float64)

    return predict


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


# --- data and validation ------------------------------------------------------------------------


def as_arrays(data: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` as float32 inputs and int64 labels from arrays, tensors, a ``.npz`` path or a
    DataLoader (any iterable of ``(x, y)`` batches)."""
    if data is None:
        raise AispError("no evaluation data: pass data=(x, y) or use the aisp_model fixture with --aisp-data")
    if isinstance(data, (str, Path)):
        return load_npz(Path(data))
    if isinstance(data, Mapping) and "x" in data and "y" in data:
        data = (data["x"], data["y"])
    if isinstance(data, (tuple, list)) and len(data) == 2 and not _looks_like_batches(data):
        x, y = _to_numpy(data[0]), _to_numpy(data[1])
    else:
        xs, ys = [], []
        try:
            for batch in data:
                xs.append(_to_numpy(batch[0]))
                ys.append(_to_numpy(batch[1]))
        except (TypeError, IndexError):
            raise AispError("data must be (x, y) arrays or tensors, a .npz path with x and y, "
                            "or a DataLoader of (x, y) batches") from None
        if not xs:
            raise AispError("the data loader yielded no batches")
        x, y = np.concatenate(xs), np.concatenate(ys)
    return _checked(x, y)


def _looks_like_batches(data: Sequence[Any]) -> bool:
    first = data[0]
    return isinstance(first, (tuple, list)) and len(first) == 2 and hasattr(first[0], "shape")


def _checked(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if x.dtype == object or y.dtype == object:
        raise AispError("data must be numeric arrays")
    if y.ndim == 2 and y.shape[1] > 1:
        y = y.argmax(axis=1)  # one-hot labels
    y = y.reshape(-1)
    if len(x) != len(y):
        raise AispError(f"data has {len(x)} inputs but {len(y)} labels; give one label per input")
    if len(x) == 0:
        raise AispError("data is empty")
    if not np.all(np.isfinite(x)):
        raise AispError("inputs contain NaN or infinite values; clean the data first")
    if not np.issubdtype(y.dtype, np.integer) and not np.all(np.equal(np.mod(y, 1), 0)):
        raise AispError("labels must be integer class indices (or one-hot rows)")
    y = y.astype(np.int64)
    if y.min() < 0:
        raise AispError(f"labels must be class indices 0..k-1, got {int(y.min())}")
    return np.ascontiguousarray(x, dtype=np.float32), y


def load_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``x`` and ``y`` from a ``.npz`` file (no pickles)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "x" not in archive or "y" not in archive:
                raise AispError(f"{path} must hold arrays named x and y, found {sorted(archive.files)}")
            return _checked(archive["x"], archive["y"])
    except (OSError, ValueError) as exc:
        raise AispError(f"cannot read evaluation data {path}: {exc}") from None


def checked_scores(scores: Any, n: int, where: str, hint: str = "") -> np.ndarray:
    """``scores`` as a finite ``(n, k)`` float array with ``k >= 2``, or an ``AispError`` (ending with
    ``hint``, e.g. which outputs a multi-output model has and how to pick one)."""
    array = np.asarray(_to_numpy(scores), dtype=np.float64)
    if array.ndim != 2 or array.shape[0] != n:
        raise AispError(f"{where} returned outputs of shape {array.shape} for {n} inputs: a classifier must "
                        "return one row of class scores per input (logits or probabilities)"
                        + (f". {hint}" if hint else ""))
    if array.shape[1] < 2:
        raise AispError(f"{where} returns {array.shape[1]} score per input: a classifier needs one score per "
                        "class (for a binary model with one logit, return [-z, z] or two probabilities)")
    if not np.all(np.isfinite(array)):
        raise AispError(f"{where} returned NaN or infinite scores; check the model and its inputs")
    return array


def resolved(classifier: Classifier, x: np.ndarray, y: np.ndarray) -> tuple[Classifier, np.ndarray]:
    """The classifier with ``nb_classes`` and ``input_shape`` filled in from the data, and the
    clean scores; ``AispError`` on a shape mismatch, labels out of range or bad outputs."""
    shape = tuple(x.shape[1:])
    if classifier.input_shape is not None and tuple(classifier.input_shape) != shape:
        expected = tuple(classifier.input_shape)
        if int(np.prod(expected)) != int(np.prod(shape)) or classifier.kind == "torch":
            raise AispError(f"the data's inputs have shape {shape} but the model expects {expected}; "
                            "reshape the data or set input_shape")
    scores = checked_scores(classifier.predict(x), len(x), classifier.name or classifier.kind,
                            classifier.outputs_note)
    nb_classes = classifier.nb_classes or scores.shape[1]
    if scores.shape[1] != nb_classes:
        raise AispError(f"the model returns {scores.shape[1]} scores per input but nb_classes={nb_classes}")
    if int(y.max()) >= nb_classes:
        raise AispError(f"label {int(y.max())} is out of range for a model with {nb_classes} classes; "
                        "labels must be 0..k-1 in the order of the model's outputs")
    classifier.bounds_for(shape)
    return replace(classifier, nb_classes=nb_classes, input_shape=shape), scores


# --- the model under test -----------------------------------------------------------------------


@dataclass(frozen=True)
class ModelUnderTest:
    """A classifier with its evaluation data, as the ``aisp_model`` fixture provides it."""

    classifier: Classifier
    x: np.ndarray | None = None
    y: np.ndarray | None = None
    location: str = ""
    device: str = "cpu"

    @property
    def data(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(x, y)``, or None when no data was configured."""
        return None if self.x is None or self.y is None else (self.x, self.y)

    @property
    def module(self) -> Any:
        """The torch module (white-box models), else None."""
        return self.classifier.module


# --- loading model files -------------------------------------------------------------------------

_MODEL_CLASS_HOW = ('model_class = "package.module:Class" (and model_kwargs = {...} for its constructor) in '
                    "[tool.aisp], --aisp-model-class / --aisp-model-kwargs, AISP_MODEL_CLASS, or "
                    "as_classifier(path, model_class=...)")


def _weights(model: Any) -> Mapping[str, Any] | None:
    """The tensors of a state dict (also one nested under "state_dict" or "model_state_dict", as
    training checkpoints keep it), or None when ``model`` is not one."""
    if not isinstance(model, Mapping) or not model:
        return None
    for key in ("state_dict", "model_state_dict"):
        if isinstance(model.get(key), Mapping):
            return _weights(model[key])
    return model if all(hasattr(v, "shape") for v in model.values()) else None


def import_model_class(spec: str, rootdir: Path | None = None) -> Any:
    """The class (or factory) named ``"package.module:Class"``; a package under ``rootdir`` (the project
    root) is found even when pytest runs from a subdirectory or the project is not installed."""
    import importlib

    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise AispError(f"model_class {spec!r} must look like package.module:Class")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        roots = [r for r in (rootdir, rootdir / "src" if rootdir else None) if r is not None and r.is_dir()]
        missing_top = exc.name is not None and module_name.split(".")[0] == exc.name.split(".")[0]
        if not missing_top or not roots or all(str(r) in sys.path for r in roots):
            raise AispError(f"model_class {spec!r}: cannot import {module_name}: {exc}; install the project "
                            "(pip install -e .) or run from its root") from None
        # The project's own package, not installed: import it from the project root (or its src/).
        sys.path[:0] = [str(r) for r in roots if str(r) not in sys.path]
        try:
            module = importlib.import_module(module_name)
        except ImportError as again:
            raise AispError(f"model_class {spec!r}: cannot import {module_name} (also looked in {roots[0]}): "
                            f"{again}") from None
    except ImportError as exc:
        raise AispError(f"model_class {spec!r}: importing {module_name} failed: {exc}") from None
    target: Any = module
    for part in attribute.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise AispError(f"model_class {spec!r}: {module_name} has no {attribute}")
    return target


def build_model(spec: str, kwargs: Mapping[str, Any] | None, weights: Mapping[str, Any], *, where: str,
                device: str = "cpu", rootdir: Path | None = None) -> Any:
    """``spec``'s class built with ``kwargs``, with ``weights`` (a state dict) loaded strictly, in eval mode."""
    torch = require("torch", "torch", "state_dict and safetensors models are built in torch")
    factory = import_model_class(spec, rootdir)
    call = f"{spec}({', '.join(f'{k}={v!r}' for k, v in (kwargs or {}).items())})"
    try:
        module = factory(**dict(kwargs or {}))
    except Exception as exc:  # the team's constructor: any error means the kwargs do not fit
        raise AispError(f"building {call} failed: {type(exc).__name__}: {exc}; check model_kwargs") from None
    if not isinstance(module, torch.nn.Module):
        raise AispError(f"model_class {spec!r} made a {type(module).__name__}, not a torch nn.Module")
    try:
        module.load_state_dict(dict(weights), strict=True)
    except RuntimeError as exc:
        detail = " ".join(line.strip() for line in str(exc).splitlines()[1:3])[:400]
        raise AispError(f"the weights in {where} do not fit {call}: {detail}; check model_class and "
                        "model_kwargs (the architecture the weights were saved from)") from None
    return module.to(device).eval()


def _whole_module_advice(error: Any, path: Path) -> str:
    """For a file refused because its pickle names classes: how to save what the robust route loads."""
    findings = list(error.findings)
    if not findings or any(f.rule_id != "AISP-SCAN-PICKLE-GLOBAL" for f in findings):
        return ""  # something worse than an unknown class: the scan's own message stands alone
    if not zipfile.is_zipfile(path):
        return ""  # not a torch.save archive
    classes = [str(f.evidence.get("global", "")) for f in findings]
    own = [c for c in classes if c and not c.startswith("torch.")] or classes
    module, _, name = own[0].rpartition(".")
    return (f"\n  if {path.name} is a whole model saved with torch.save(model): it can only be loaded by running "
            f"its pickle. Save the weights instead, torch.save(model.state_dict(), {str(path.name)!r}) or "
            f"safetensors' save_file(model.state_dict(), ...), and set model_class = \"{module}:{name}\" "
            "in [tool.aisp]; or export TorchScript (torch.jit.script(model).save(...)) or ONNX")


def _configured_fail_on(settings: Any) -> Any:
    """--aisp-fail-on when it was set; otherwise the scan policy's own threshold decides."""
    return settings.fail_on if settings.source_of("fail_on") != "default" else None


def _load_model(path: Path, device: str, policy: Any = None, *, model_class: str | None = None,
                model_kwargs: Mapping[str, Any] | None = None, rootdir: Path | None = None,
                fail_on: Any = None, class_required: bool = True) -> Any:
    """Load a model file without running code in it: the scanner scans it first (``UnsafeArtifact``
    when unsafe), then loads it with a loader that cannot execute what the file says. Weights only
    (a state_dict or safetensors) are built into ``model_class``."""
    from pytest_aisp.findings import UnsafeArtifact
    from pytest_aisp.scan import load_model_safely

    try:
        loaded = load_model_safely(path, device=device, policy=policy or None, fail_on=fail_on)
    except UnsafeArtifact as exc:
        advice = _whole_module_advice(exc, path)
        if not advice:
            raise
        raise UnsafeArtifact(str(exc) + advice, result=exc.result, findings=exc.findings) from None
    weights = _weights(loaded.model)
    kind = "safetensors file" if loaded.format == "safetensors" else "state dict"
    if weights is not None:
        if model_class is None:
            raise AispError(f"{path} holds weights only (a {kind} of {len(weights)} tensors): name the "
                            f"architecture to build them into with {_MODEL_CLASS_HOW}")
        return build_model(model_class, model_kwargs, weights, where=str(path), device=device, rootdir=rootdir)
    if model_class is not None and class_required:
        raise AispError(f"model_class {model_class!r} is set, but {path} is a {loaded.format} model that carries "
                        "its own architecture; remove model_class (it is only for state_dict and "
                        "safetensors weights)")
    if isinstance(loaded.model, Mapping):
        raise AispError(f"{path} holds a {loaded.format} mapping of {len(loaded.model)} entries that are not all "
                        "tensors, not a model; give a TorchScript, ONNX, state_dict or safetensors file")
    return loaded.model


def model_under_test_from_settings(settings: Any, *, device: str = "cpu") -> ModelUnderTest:
    """The ``aisp_model`` fixture's factory: the model from ``settings.model`` (scanned, then loaded
    without running code; a state_dict or safetensors file is built into ``settings.model_class`` with
    ``settings.model_kwargs``), its data from ``settings.data`` (``.npz`` with x and y, and optionally
    per-feature ``lower``/``upper``) and ``[tool.aisp.robust]`` (``bounds = [lo, hi]`` or ``"none"``,
    ``nb_classes``, ``input_shape``); ONNX scores from ``settings.onnx_output`` when set."""
    section = settings.section("robust")
    model_path = settings.resolve(settings.model)
    if model_path is None or not Path(model_path).is_file():
        raise AispError(f"model file {model_path} does not exist; check --aisp-model")
    loaded = _load_model(Path(model_path), device, policy=dict(settings.section("scan")) or None,
                         model_class=settings.model_class, model_kwargs=settings.model_kwargs,
                         rootdir=settings.rootdir, fail_on=_configured_fail_on(settings))
    data_path = settings.resolve(settings.data) if settings.data is not None else None
    x, y = load_npz(Path(data_path)) if data_path is not None else (None, None)
    bounds = section.get("bounds")
    if bounds is None:
        # Per-feature bounds saved beside the data (arrays "lower" and "upper"), else [0, 1].
        bounds = _npz_bounds(Path(data_path)) if data_path is not None else None
        bounds = bounds or (0.0, 1.0)
    classifier = as_classifier(
        loaded,
        nb_classes=section.get("nb_classes"),
        input_shape=section.get("input_shape"),
        bounds=None if bounds == "none" else (_bound(bounds[0]), _bound(bounds[1])),
        device=device,
        name=str(model_path),
        onnx_output=settings.onnx_output,
    )
    return ModelUnderTest(classifier=classifier, x=x, y=y, location=str(model_path), device=device)


def _npz_bounds(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    with np.load(path, allow_pickle=False) as archive:
        if "lower" in archive and "upper" in archive:
            return archive["lower"].astype(np.float32), archive["upper"].astype(np.float32)
    return None


def _bound(value: Any) -> Any:
    if isinstance(value, (list, tuple, np.ndarray)):
        return np.asarray(value, dtype=np.float32)
    return float(value)
