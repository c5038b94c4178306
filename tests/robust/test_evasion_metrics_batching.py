"""What the reports say about a run (every metric one meaning), and how the native attacks batch."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest

from pytest_aisp.recorder import recording
from pytest_aisp.robust import evaluate_robustness
from pytest_aisp.robust.evaluate import NOT_ATTACKED, auto_batch_size

torch = pytest.importorskip("torch")


# --- metrics ---------------------------------------------------------------------------------------


def test_early_stop_is_reported_as_a_bound_not_as_robust_accuracy(digits_mlp):
    kwargs = {"attack": "pgd", "eps": 0.1, "steps": 10, "batch_size": 64}
    with recording("t::failing") as failing_record:
        failing = evaluate_robustness(digits_mlp.module, digits_mlp.data, min_acc=0.95, **kwargs)
    with recording("t::passing") as passing_record:
        passing = evaluate_robustness(digits_mlp.module, digits_mlp.data, min_acc=0.05, **kwargs)
    with recording("t::full") as full_record:
        full = evaluate_robustness(digits_mlp.module, digits_mlp.data, **kwargs)
    assert failing.robust_acc_bound == "at most" and passing.robust_acc_bound == "at least"
    assert full.robust_acc_bound == "exact"
    metrics = failing_record.metrics
    assert "robust_acc" not in metrics and "ci_low" not in metrics
    assert metrics["robust_acc_at_most"] == failing.robust_acc and metrics["stopped_early"] == 1
    assert metrics["not_attacked"] == np.sum(failing.outcomes == NOT_ATTACKED) > 0
    assert metrics["attacked"] + metrics["not_attacked"] <= metrics["n"]
    assert "robust_acc" not in passing_record.metrics and passing_record.metrics["robust_acc_at_least"] > 0
    assert full_record.metrics["robust_acc"] == full.robust_acc and full_record.metrics["stopped_early"] == 0
    assert full_record.metrics["not_attacked"] == 0
    assert "at most" in failing.summary() and "not attacked" in failing.summary()


def test_junit_properties_say_what_each_number_is(pytester, robust_models):
    files = robust_models["digits_mlp"]
    pytester.makepyprojecttoml(f"""
        [tool.aisp]
        model = {str(files["torchscript"])!r}
        data = {str(files["data"])!r}
    """)
    pytester.makepyfile(test_m="""
        import pytest
        from pytest_aisp import RobustnessFailure, assert_robust

        @pytest.mark.xfail(strict=True, raises=RobustnessFailure)
        def test_stopped(aisp_model):
            assert_robust(aisp_model, attack="pgd", eps=0.2, steps=10, batch_size=32, min_acc=0.9)

        def test_full(aisp_model):
            assert_robust(aisp_model, attack="pgd", eps=0.01, steps=10, min_acc=0.5)
    """)
    result = pytester.runpytest("-p", "no:cacheprovider", "--junitxml=junit.xml")
    result.assert_outcomes(passed=1, xfailed=1)
    properties = {}
    for case in ET.parse(pytester.path / "junit.xml").getroot().iter("testcase"):
        properties[case.get("name")] = {p.get("name"): p.get("value") for p in case.iter("property")}
    stopped, full = properties["test_stopped"], properties["test_full"]
    assert "aisp.metric.robust_acc" not in stopped
    assert stopped["aisp.metric.stopped_early"] == "1" and "aisp.metric.robust_acc_at_most" in stopped
    assert float(stopped["aisp.metric.not_attacked"]) > 0
    assert full["aisp.metric.stopped_early"] == "0" and "aisp.metric.robust_acc" in full
    assert "aisp.metric.robust_acc_at_most" not in full


# --- batching --------------------------------------------------------------------------------------


def _gradient_calls(module, run) -> int:
    calls = []
    handle = module.register_forward_hook(lambda *_: calls.append(torch.is_grad_enabled()))
    try:
        run()
    finally:
        handle.remove()
    return sum(calls)


def test_small_inputs_are_attacked_in_one_batch(digits_mlp):
    """Per-step overhead dominates on small inputs: one batch, one gradient call per step."""
    x, y = digits_mlp.data
    assert len(x) > 256
    calls = _gradient_calls(digits_mlp.module, lambda: evaluate_robustness(
        digits_mlp.module, (x, y), attack="pgd", eps=0.05, steps=10))
    assert calls == 10
    explicit = _gradient_calls(digits_mlp.module, lambda: evaluate_robustness(
        digits_mlp.module, (x, y), attack="pgd", eps=0.05, steps=10, batch_size=128))
    assert explicit == 10 * int(np.ceil(np.sum(digits_mlp.module(torch.from_numpy(x)).argmax(1).numpy() == y)
                                        / 128))


def test_auto_batch_size_bounds():
    assert auto_batch_size((64,)) == 8192
    assert auto_batch_size((3, 32, 32)) == 341
    assert auto_batch_size((3, 224, 224)) == 256  # never below the old default


@pytest.mark.parametrize("name", ["digits_mlp", "digits_cnn"])
def test_batching_does_not_change_what_the_attack_finds(name, request):
    model = request.getfixturevalue(name)
    kwargs = {"attack": "pgd", "eps": 0.08, "steps": 20, "random_start": False}
    one = evaluate_robustness(model.module, model.data, **kwargs)
    small = evaluate_robustness(model.module, model.data, batch_size=50, **kwargs)
    assert np.mean(one.outcomes == small.outcomes) > 0.99
    assert abs(one.robust_acc - small.robust_acc) <= 0.01
