"""assert_robust as a test assertion: failures, messages, early exit, findings, xfail, ART attacks."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_aisp.findings import AispError, RobustnessFailure
from pytest_aisp.recorder import recording
from pytest_aisp.robust import assert_robust, evaluate_robustness
from pytest_aisp.robust.evaluate import NOT_ATTACKED, RULE_EVASION, RULE_NOT_EVALUATED


def test_weak_model_fails_with_numbers_settings_and_a_counterexample(digits_mlp):
    with pytest.raises(RobustnessFailure) as caught:
        assert_robust(digits_mlp.module, digits_mlp.data, attack="pgd", eps=0.1, min_acc=0.9, steps=10)
    message = str(caught.value)
    assert "robust accuracy" in message and "< min_acc 0.900" in message
    assert "clean accuracy 0.98" in message and "95% CI" in message
    assert "attack='pgd'" in message and "eps=0.1" in message and "seed=0" in message
    assert "smallest counterexample: sample" in message
    assert caught.value.findings[0].rule_id == RULE_EVASION
    assert caught.value.result.robust_acc < 0.9


def test_robust_enough_model_passes_and_returns_the_result(digits_mlp):
    result = assert_robust(digits_mlp.module, digits_mlp.data, attack="fgsm", eps=0.01, min_acc=0.5)
    assert result.robust_acc >= 0.5 and result.findings == ()


def test_run_stops_once_min_acc_is_decided(digits_mlp):
    kwargs = {"attack": "pgd", "eps": 0.1, "steps": 10, "batch_size": 64}
    full = evaluate_robustness(digits_mlp.module, digits_mlp.data, **kwargs)
    failing = evaluate_robustness(digits_mlp.module, digits_mlp.data, min_acc=0.95, **kwargs)
    passing = evaluate_robustness(digits_mlp.module, digits_mlp.data, min_acc=0.05, **kwargs)
    for early in (failing, passing):
        assert early.stopped_early and np.sum(early.outcomes == NOT_ATTACKED) > early.n / 2
    assert failing.robust_acc >= full.robust_acc and failing.robust_acc < 0.95  # an upper bound that fails
    assert passing.robust_acc <= full.robust_acc and passing.robust_acc >= 0.05  # a lower bound that passes
    assert failing.findings[0].rule_id == RULE_EVASION and passing.findings == ()


def test_findings_and_metrics_reach_the_running_test(digits_cnn):
    with recording("tests/test_x.py::test_y") as record, pytest.raises(RobustnessFailure):
        assert_robust(digits_cnn.module, digits_cnn.data, attack="pgd", eps=0.2, min_acc=0.9, steps=5)
    assert [f.rule_id for f in record.findings] == [RULE_EVASION]
    assert 0 <= record.metrics["robust_acc"] < 0.9
    assert record.attachments and record.attachments[0].content.startswith(b"\x89PNG")


def test_fail_on_above_the_rule_severity_lets_the_test_pass(digits_mlp):
    result = assert_robust(digits_mlp.module, digits_mlp.data, eps=0.2, min_acc=0.99, steps=5,
                           fail_on="critical")
    assert result.findings[0].rule_id == RULE_EVASION


def test_no_correct_points_is_a_finding_not_a_pass(digits_mlp):
    wrong = (digits_mlp.y + 1) % 10
    result = evaluate_robustness(digits_mlp.module, (digits_mlp.x, wrong), eps=0.01, steps=2)
    assert [f.rule_id for f in result.findings] == [RULE_NOT_EVALUATED]


def test_known_weakness_marked_xfail_strict(pytester, robust_models):
    files = robust_models["digits_mlp"]
    pytester.makepyfile(f"""
        import pytest, torch
        from pytest_aisp import RobustnessFailure, assert_robust

        MODEL = torch.jit.load({str(files["torchscript"])!r})
        import numpy as np
        DATA = tuple(np.load({str(files["data"])!r})[k] for k in ("x", "y"))

        @pytest.mark.xfail(strict=True, raises=RobustnessFailure)
        def test_known_weak():
            assert_robust(MODEL, DATA, attack="pgd", eps=0.2, min_acc=0.9, steps=5)

        @pytest.mark.xfail(strict=True, raises=RobustnessFailure)
        def test_bad_input_is_not_hidden():
            assert_robust(MODEL, (DATA[0][:, :3], DATA[1]), attack="pgd", eps=0.2, min_acc=0.9)
    """)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(xfailed=1, failed=1)
    result.stdout.fnmatch_lines(["*AispError*"])


# --- ART attacks by name ---------------------------------------------------------------------


@pytest.mark.parametrize(("name", "options"), [
    ("FastGradientMethod", {}),
    ("DeepFool", {"max_iter": 5}),
    ("CarliniL2Method", {"max_iter": 3, "binary_search_steps": 2}),
])
def test_art_attacks_run_by_name_with_their_options(digits_mlp, name, options):
    pytest.importorskip("art")
    x, y = digits_mlp.x[:40], digits_mlp.y[:40]
    norm = "2" if name == "CarliniL2Method" else "inf"
    eps = 2.0 if norm == "2" else 0.2
    result = evaluate_robustness(digits_mlp.module, (x, y), attack=f"art:{name}", eps=eps, norm=norm,
                                 attack_options=options)
    delta = (result.adversarial - x).reshape(len(x), -1)
    size = np.abs(delta).max(axis=1) if norm == "inf" else np.linalg.norm(delta, axis=1)
    assert np.all(size <= eps + 1e-6)
    assert result.robust_acc < result.clean_acc
    assert result.attack == f"art:{name}"


def test_art_black_box_attack_on_a_sklearn_model(digits_mlp):
    pytest.importorskip("art")
    from sklearn.linear_model import LogisticRegression

    estimator = LogisticRegression(max_iter=300).fit(digits_mlp.x, digits_mlp.y)
    x, y = digits_mlp.x[:10], digits_mlp.y[:10]
    result = evaluate_robustness(estimator, (x, y), attack="art:HopSkipJump", eps=0.5, norm="2",
                                 attack_options={"max_iter": 2, "max_eval": 50, "init_eval": 10})
    assert result.n == 10 and 0.0 <= result.robust_acc <= result.clean_acc


def test_art_numpy2_breakage_is_a_clear_aisp_error():
    pytest.importorskip("art")
    if int(np.__version__.split(".")[0]) < 2:
        pytest.skip("only numpy 2 removed np.asfarray")
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8 * 8 * 3, 4))  # NHWC images
    x = np.random.default_rng(0).random((4, 8, 8, 3)).astype(np.float32)
    with torch.no_grad():
        y = model(torch.from_numpy(x)).argmax(1).numpy()
    # ART 1.20's laser attack calls np.asfarray, which numpy 2 removed.
    with pytest.raises(AispError, match="does not run with NumPy 2"):
        evaluate_robustness(model, (x, y), attack="art:laser_attack.laser_attack.LaserBeamAttack", eps=1.0,
                            attack_options={"iterations": 2, "max_laser_beam": (780, 3.14, 32, 32),
                                            "estimator_options": {"channels_first": False}})


def test_art_errors_name_the_attack_and_its_arguments(digits_mlp):
    pytest.importorskip("art")
    with pytest.raises(AispError, match="did you mean DeepFool"):
        evaluate_robustness(digits_mlp.module, digits_mlp.data, attack="art:DeepFol")
    with pytest.raises(AispError, match="takes no argument"):
        evaluate_robustness(digits_mlp.module, digits_mlp.data, attack="art:DeepFool",
                            attack_options={"not_an_option": 1})


def test_art_gradient_attack_on_a_sklearn_model_uses_arts_wrapper(digits_mlp):
    pytest.importorskip("art")
    from sklearn.linear_model import LogisticRegression

    estimator = LogisticRegression(max_iter=300).fit(digits_mlp.x, digits_mlp.y)
    data = (digits_mlp.x[:100], digits_mlp.y[:100])
    # ART's scikit-learn wrapper gives logistic regression gradients, so a white-box attack runs.
    art_pgd = evaluate_robustness(estimator, data, attack="art:ProjectedGradientDescent", eps=0.1, steps=10)
    noise = evaluate_robustness(estimator, data, attack="noise", eps=0.1, steps=10)
    assert art_pgd.robust_acc < noise.robust_acc
