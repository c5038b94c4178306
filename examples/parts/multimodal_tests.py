"""Multimodal robustness checks of the example ML repo: images, audio and image + caption."""

from __future__ import annotations

import pytest

import pytest_aisp
from pytest_aisp import InvarianceFailure


@pytest.mark.aisp_multimodal
def test_digit_classifier_is_invariant_to_lighting(mm_digit_classifier, mm_digit_images):
    images, labels = mm_digit_images
    pytest_aisp.assert_invariant(
        mm_digit_classifier,
        images,
        perturbations=["image:brightness", "image:contrast", "image:jpeg"],
        severities=(0.25, 0.5, 1.0),
        labels=labels,
        min_agreement=0.9,
    )


@pytest.mark.aisp_multimodal
@pytest.mark.xfail(strict=True, raises=InvarianceFailure, reason="trained without brightness augmentation")
def test_legacy_digit_classifier_breaks_under_brightness(mm_legacy_digit_classifier, mm_digit_images):
    images, labels = mm_digit_images
    pytest_aisp.assert_invariant(
        mm_legacy_digit_classifier, images, perturbations="image:brightness", labels=labels, min_agreement=0.9
    )


@pytest.mark.aisp_multimodal
def test_tone_classifier_survives_mild_channel_noise(mm_tone_classifier):
    model, waves, labels = mm_tone_classifier
    pytest_aisp.assert_invariant(
        model,
        waves,
        perturbations=["audio:white_noise", "audio:pink_noise", "audio:reverb", "audio:mp3"],
        severities=(0.25,),
        labels=labels,
        sample_rate=8000,
        min_agreement=0.9,
    )


@pytest.mark.aisp_multimodal
def test_image_caption_model_resists_coordinated_edits(mm_image_caption_model):
    model, samples, _ = mm_image_caption_model
    pytest_aisp.assert_cross_modal_consistent(
        model,
        samples,
        perturb={"image": "image:brightness", "text": "text:contractions"},
        severities=(0.5, 1.0),
    )


@pytest.mark.aisp_multimodal
@pytest.mark.xfail(
    strict=True, raises=InvarianceFailure, reason="blur + invisible characters break the fusion"
)
def test_image_caption_model_cross_modal_weakness(mm_image_caption_model):
    model, samples, _ = mm_image_caption_model
    pytest_aisp.assert_cross_modal_consistent(
        model,
        samples,
        perturb={"image": "image:blur", "text": "text:zero_width"},
        severities=(1.0,),
    )


@pytest.mark.aisp_multimodal
def test_image_caption_model_notices_contradicting_captions(mm_image_caption_model):
    model, samples, labels = mm_image_caption_model
    pytest_aisp.assert_mismatch_detected(
        model.match_score, samples, swap="text", labels=labels, min_detection=0.9, max_false_alarm=0.1
    )
