"""Invariance checks against the real fixture models: the brightness-sensitive CNN fails, its twin passes."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_aisp.findings import AispError, InvarianceFailure, Severity
from pytest_aisp.multimodal import (
    apply_perturbation,
    assert_breaking_severity,
    assert_invariant,
    evaluate_invariance,
    find_breaking_severity,
)


def test_brightness_sensitive_cnn_fails_the_brightness_check(plain_cnn, digits):
    x, y = digits
    with pytest.raises(InvarianceFailure) as info:
        assert_invariant(plain_cnn, x, perturbations="image:brightness", min_agreement=0.9, labels=y)
    message = str(info.value)
    assert "image:brightness" in message and "severity 1" in message
    assert "AISP-MM-INVARIANCE" in message
    assert "smallest counterexample: example #" in message and "flips" in message
    result = info.value.result
    assert result.agreement("image:brightness", 1.0) < 0.9
    assert result.failing_examples and result.failing_examples[0].perturbation == "image:brightness"
    finding = info.value.findings[0]
    assert finding.location == "digits_plain.pt:image:brightness"
    assert finding.evidence["examples"] and finding.metrics["agreement"] < 0.9


def test_augmented_twin_passes_the_same_check(augmented_cnn, digits):
    x, y = digits
    result = assert_invariant(
        augmented_cnn, x, perturbations=["image:brightness", "image:contrast"], min_agreement=0.9, labels=y
    )
    assert result.ok
    assert result.agreement("image:brightness", 1.0) >= 0.95
    assert result.metrics["mm.min_agreement"] >= 0.9
    assert result.clean_accuracy is not None and result.clean_accuracy > 0.9


def test_evaluate_reports_without_raising_and_measures_accuracy(plain_cnn, digits):
    x, y = digits
    result = evaluate_invariance(
        plain_cnn,
        x,
        perturbations=["image:brightness", "image:occlusion"],
        severities=(0.25, 1.0),
        labels=y,
        min_accuracy=0.8,
    )
    rules = {(f.rule_id, f.evidence["perturbation"]) for f in result.findings}
    assert ("AISP-MM-INVARIANCE", "image:occlusion") in rules
    assert ("AISP-MM-ACCURACY", "image:occlusion") in rules
    occlusion = next(f for f in result.findings if f.evidence["perturbation"] == "image:occlusion")
    assert occlusion.severity is Severity.HIGH  # fails already at severity 0.25
    assert len(result.cells) == 4
    assert all(c.accuracy is not None for c in result.cells)
    assert "image:occlusion" in result.table()


def test_results_repeat_for_a_seed(plain_cnn, digits):
    x, _ = digits
    first = evaluate_invariance(plain_cnn, x, perturbations="image:gaussian_noise", severities=(1.0,), seed=5)
    second = evaluate_invariance(
        plain_cnn, x, perturbations="image:gaussian_noise", severities=(1.0,), seed=5
    )
    assert first.cells == second.cells


def test_a_model_that_crashes_on_perturbed_input_is_a_finding(digits):
    x, _ = digits

    def fragile(images):
        if images.mean() < x.mean() * 0.99:
            raise ValueError("cannot handle dark images")
        return np.zeros(len(images), dtype=int)

    fragile.name = "fragile"
    result = evaluate_invariance(fragile, x, perturbations="image:pad", severities=(0.5,))
    assert [f.rule_id for f in result.findings] == ["AISP-MM-UNCHECKED"]
    assert "model failed" in result.findings[0].message


def test_model_output_shape_is_checked(digits):
    x, _ = digits
    with pytest.raises(AispError, match=r"labels \(N,\) or scores \(N, K\)"):
        evaluate_invariance(lambda b: np.zeros((3, 3, 3)), x, perturbations="image:blur")
    with pytest.raises(AispError, match="labels must have shape"):
        evaluate_invariance(lambda b: np.zeros(len(b)), x, perturbations="image:blur", labels=[1, 2])


def test_audio_invariance_on_the_tone_classifier(tones):
    model, waves, labels = tones
    passing = evaluate_invariance(
        model,
        waves,
        perturbations=["audio:white_noise", "audio:reverb"],
        severities=(0.25,),
        labels=labels,
        sample_rate=8000,
    )
    assert passing.ok, passing.table()
    failing = evaluate_invariance(
        model, waves, perturbations="audio:white_noise", severities=(1.0,), labels=labels, sample_rate=8000
    )
    assert not failing.ok and failing.cells[0].agreement < 0.5


def test_video_invariance_on_the_clip_classifier(clips):
    model, x, y, fps = clips
    result = evaluate_invariance(
        model,
        x,
        perturbations=["video:frame_drop", "video:temporal_crop", "video:jpeg"],
        severities=(0.5,),
        labels=y,
        fps=fps,
        min_agreement=0.85,
    )
    assert result.ok, result.table()
    dark = evaluate_invariance(model, x, perturbations="video:brightness", severities=(1.0,), fps=fps)
    assert not dark.ok  # the colour-histogram half of the model depends on brightness


def test_find_breaking_severity_finds_and_shrinks(plain_cnn, digits):
    x, _ = digits
    found = None
    for i in range(1, 6):
        found = find_breaking_severity(plain_cnn, x[i], "image:brightness", max_examples=30)
        if found.severity is not None:
            break
    assert found is not None and found.severity is not None
    assert 0.5 < found.severity < 1.0  # the plain CNN keeps its predictions at moderate brightness
    assert found.perturbed_prediction != found.clean_prediction
    flipped = apply_perturbation("image:brightness", x[i][None], found.severity, seed=found.seed)
    assert plain_cnn(flipped).argmax(1)[0] == found.perturbed_prediction
    again = find_breaking_severity(plain_cnn, x[i], "image:brightness", max_examples=30)
    assert again.severity == found.severity and again.seed == found.seed


def test_assert_breaking_severity(plain_cnn, augmented_cnn, digits):
    x, _ = digits
    with pytest.raises(InvarianceFailure, match=r"smallest counterexample: .* -> "):
        assert_breaking_severity(plain_cnn, x[1], "image:occlusion", at_least=0.9, max_examples=25)
    robust = assert_breaking_severity(augmented_cnn, x[1], "image:brightness", at_least=0.9, max_examples=20)
    assert robust.severity is None or robust.severity >= 0.9


def test_find_breaking_severity_takes_one_example(plain_cnn, digits):
    x, _ = digits
    with pytest.raises(AispError, match="one example"):
        find_breaking_severity(plain_cnn, x[:3], "image:blur")


def test_text_invariance_on_the_caption_classifier(image_caption):
    model, samples, labels = image_caption

    def caption_model(texts):
        return model.captions.probabilities(texts)

    caption_model.name = "captions"
    texts = samples["text"]
    kept = evaluate_invariance(
        caption_model, texts, perturbations="text:contractions", severities=(1.0,), labels=labels
    )
    assert kept.ok
    broken = evaluate_invariance(
        caption_model,
        texts,
        perturbations=["text:zero_width", "text:typos"],
        severities=(1.0,),
        labels=labels,
        backend="native",
    )
    assert {f.evidence["perturbation"] for f in broken.findings} == {"text:zero_width", "text:typos"}


def test_augly_backend_missing_names_the_extra(monkeypatch):
    import sys

    from pytest_aisp.findings import BackendMissing
    from pytest_aisp.multimodal.registry import choose_backend, get_perturbation

    monkeypatch.setitem(sys.modules, "augly.image", None)  # import fails as if AugLy were absent
    monkeypatch.setitem(sys.modules, "augly", None)
    with pytest.raises(BackendMissing, match=r"pytest-aisp\[augly\]"):
        choose_backend(get_perturbation("image:blur"), "augly")
    assert choose_backend(get_perturbation("image:blur"), "auto") == "native"
