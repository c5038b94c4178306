"""Cross-modal checks on the image + caption model: coordinated perturbations and contradicting captions."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_aisp.findings import AispError, InvarianceFailure
from pytest_aisp.multimodal import (
    assert_cross_modal_consistent,
    assert_mismatch_detected,
    evaluate_cross_modal,
    evaluate_mismatch,
    mismatched_samples,
)


def test_coordinated_perturbation_breaks_what_single_ones_do_not(image_caption):
    model, samples, _ = image_caption
    with pytest.raises(InvarianceFailure) as info:
        assert_cross_modal_consistent(
            model,
            samples,
            perturb={"image": "image:blur", "text": "text:zero_width"},
            severities=(1.0,),
            backend="native",
        )
    message = str(info.value)
    assert "AISP-MM-CROSS-MODAL" in message and "only when" in message
    assert "smallest counterexample: sample #" in message
    result = info.value.result
    cell = result.cells[0]
    i = cell.joint_only[0]
    assert cell.joint_only_subsets[i] == ("image", "text")
    assert result.joint_only_rate > 0.1
    # the reported example really is kept by each perturbation alone and broken by both
    from pytest_aisp.multimodal import apply_perturbation

    image = apply_perturbation("image:blur", samples["image"][i : i + 1], 1.0, backend="native")
    text = apply_perturbation("text:zero_width", samples["text"][i : i + 1], 1.0, backend="native")
    clean = model({"image": samples["image"][i : i + 1], "text": samples["text"][i : i + 1]}).argmax(1)
    assert model({"image": image, "text": samples["text"][i : i + 1]}).argmax(1) == clean
    assert model({"image": samples["image"][i : i + 1], "text": text}).argmax(1) == clean
    assert model({"image": image, "text": text}).argmax(1) != clean


def test_robust_combination_passes(image_caption):
    model, samples, _ = image_caption
    result = assert_cross_modal_consistent(
        model,
        samples,
        perturb={"image": "image:brightness", "text": "text:contractions"},
        severities=(0.5, 1.0),
    )
    assert result.ok and result.joint_only_rate == 0.0
    assert len(result.cells) == 2


def test_several_perturbations_per_modality_are_combined(image_caption):
    model, samples, _ = image_caption
    result = evaluate_cross_modal(
        model,
        samples,
        perturb={"image": ["image:brightness", "image:contrast"], "text": "text:bidi"},
        severities=(0.5,),
        max_joint_only=1.0,
        min_agreement=0.5,
    )
    assert [c.combination for c in result.cells] == [
        ("image:brightness", "text:bidi"),
        ("image:contrast", "text:bidi"),
    ]
    assert set(result.cells[0].agreement) == {"image", "text", "image+text"}


def test_bad_cross_modal_input(image_caption):
    model, samples, _ = image_caption
    with pytest.raises(AispError, match="at least two modalities"):
        evaluate_cross_modal(model, samples, perturb={"image": "image:blur"})
    with pytest.raises(AispError, match="a text perturbation"):
        evaluate_cross_modal(model, samples, perturb={"image": "text:typos", "text": "text:typos"})
    with pytest.raises(AispError, match="same number of examples"):
        evaluate_cross_modal(
            model,
            {"image": samples["image"], "text": samples["text"][:3]},
            perturb={"image": "image:blur", "text": "text:typos"},
        )


def test_mismatched_captions_are_noticed(image_caption):
    model, samples, labels = image_caption
    result = assert_mismatch_detected(model.match_score, samples, swap="text", labels=labels)
    assert result.detection_rate >= 0.9 and result.false_alarm_rate <= 0.1
    mixed, partners = mismatched_samples(samples, "text", labels)
    assert all(labels[p] != labels[i] for i, p in enumerate(partners))
    assert mixed["image"] is samples["image"]


def test_a_model_that_ignores_the_caption_misses_mismatches(image_caption):
    model, samples, labels = image_caption

    def image_only_score(batch):
        return model.image_model.probabilities(batch["image"]).max(axis=1)

    result = evaluate_mismatch(image_only_score, samples, labels=labels)
    assert result.detection_rate < 0.2 and result.findings[0].rule_id == "AISP-MM-MISMATCH"
    with pytest.raises(InvarianceFailure, match="was accepted"):
        assert_mismatch_detected(image_only_score, samples, labels=labels)


def test_mismatch_needs_something_to_contradict(image_caption):
    model, samples, _ = image_caption
    with pytest.raises(AispError, match="same label"):
        evaluate_mismatch(model.match_score, samples, labels=np.zeros(len(samples["text"])))


def test_audio_and_transcript_model(tones, mm):
    classifier, waves, labels = tones
    words = {"low": 0, "high": 1, "rising": 2, "falling": 3}
    transcripts = [f"a {name} sound" for name in np.array(list(words))[labels]]
    text_model = mm.CaptionClassifier(words)

    def audio_transcript(samples):
        scores = classifier(samples["audio"])
        p_audio = np.exp(scores - scores.max(axis=1, keepdims=True))
        p_audio /= p_audio.sum(axis=1, keepdims=True)
        p_text = text_model.probabilities(samples["text"])[:, :4]
        return np.log(p_audio + 1e-9) + np.log(p_text + 1e-9)

    samples = {"audio": waves, "text": transcripts}
    result = evaluate_cross_modal(
        audio_transcript,
        samples,
        perturb={"audio": "audio:white_noise", "text": "text:typos"},
        severities=(0.25, 1.0),
        sample_rate=8000,
        max_joint_only=1.0,
        backend="native",
    )
    mild, strong = result.cells
    assert mild.agreement["audio+text"] == 1.0
    assert strong.agreement["audio"] < 1.0 or strong.agreement["audio+text"] < 1.0
    with pytest.raises(AispError, match="sample_rate"):
        evaluate_cross_modal(
            audio_transcript, samples, perturb={"audio": "audio:reverb", "text": "text:typos"}
        )


def test_a_model_every_perturbation_breaks_fails_by_default(image_caption):
    """Each modality alone breaks it, so nothing is broken *only* together: this passed before the default
    agreement bound (fails on the previous commit)."""
    _, samples, _ = image_caption

    def fragile(batch):  # any change to either input changes the prediction
        image_part = np.asarray(batch["image"], dtype=np.int64).reshape(len(batch["image"]), -1).sum(axis=1)
        text_part = np.array([sum(map(ord, t)) for t in batch["text"]])
        return np.eye(7)[(image_part + text_part) % 7]

    with pytest.raises(InvarianceFailure) as info:
        assert_cross_modal_consistent(
            fragile, samples, perturb={"image": "image:brightness", "text": "text:typos"}, severities=(0.5,),
            backend="native",
        )
    result = info.value.result
    assert result.joint_only_rate == 0.0
    alone = {f.evidence["perturbed"] for f in result.findings if f.rule_id == "AISP-MM-CROSS-MODAL-AGREEMENT"}
    assert {"image", "text", "image+text"} <= alone
    assert "alone keeps" in str(info.value)
    relaxed = evaluate_cross_modal(fragile, samples, perturb={"image": "image:brightness", "text": "text:typos"},
                                   severities=(0.5,), backend="native", min_agreement=None)
    assert relaxed.ok  # the bound, not the joint-only check, is what catches it
