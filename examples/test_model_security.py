"""The security tests of an ML repository, as its team writes them beside the unit tests.

Run them with ``pytest -m aisp examples/`` (or ``tox -e demo``, which also writes every report). Known
weaknesses of the example models are marked ``xfail(strict=True, raises=...)``: the run passes while
they stay weak, and fails the day one gets fixed so the marker can go.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings

import pytest_aisp
from pytest_aisp import (
    IntegrityFailure,
    InvarianceFailure,
    LLMVulnerability,
    MonitorAlert,
    RobustnessFailure,
    UnsafeArtifact,
    assert_alerts,
    assert_llm_secure,
    assert_no_alerts,
    assert_no_cross_session_leak,
    assert_no_data_leak,
    assert_no_encoding_bypass,
    assert_no_insecure_output,
    assert_no_jailbreak,
    assert_no_prompt_injection,
    assert_no_system_prompt_leak,
    assert_safe_artifact,
    load_model_safely,
    probe_llm,
    replay,
    scan_artifact,
)
from pytest_aisp.monitor import monitor_from_config
from pytest_aisp.nlp.strategies import text_edits
from pytest_aisp.robust import assert_locally_robust, assert_no_gradient_masking, assert_robust, robustness_curve
from pytest_aisp.supply import (
    assert_dependencies_pinned,
    assert_manifest_intact,
    assert_provenance_intact,
    verify_manifest,
)

# --------------------------------------------------------------------------------------------------------------
# Model files: scan before anything loads them
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.aisp
def test_release_checkpoint_is_safe(scan_release_dir: Path) -> None:
    assert_safe_artifact(scan_release_dir / "checkpoint.pt")


@pytest.mark.aisp
def test_whole_release_folder_is_clean(scan_release_dir: Path) -> None:
    result = scan_artifact(scan_release_dir)
    assert result.ok, "\n".join(f.one_line() for f in result.findings)
    # only the zip directory and the pickles were read, not the weights
    assert result.bytes_read < sum(f.size for f in result.files)


@pytest.mark.aisp
def test_checkpoint_loads_without_running_code(scan_release_dir: Path) -> None:
    loaded = load_model_safely(scan_release_dir / "checkpoint.pt")
    assert loaded.loader == "torch.load(weights_only=True)"
    assert set(loaded.model) == {"model", "epoch"}


@pytest.mark.aisp
def test_untrusted_download_is_refused(scan_untrusted_download: Path) -> None:
    with pytest.raises(UnsafeArtifact, match=r"random\._os\.system"):
        assert_safe_artifact(scan_untrusted_download)
    assert not list(scan_untrusted_download.parent.glob("*.marker"))


# --------------------------------------------------------------------------------------------------------------
# Adversarial robustness: evasion
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.aisp_robust
def test_model_withstands_small_pgd_perturbations(aisp_model):
    # The card's call: 40% of the way to a visible change of a digit, 70% must still be right.
    assert_robust(aisp_model, attack="pgd", eps=0.03, min_acc=0.7)


@pytest.mark.aisp_robust
@pytest.mark.xfail(strict=True, raises=RobustnessFailure, reason="undefended model: weak at eps=0.2")
def test_known_weakness_at_large_eps(aisp_model):
    assert_robust(aisp_model, attack="apgd-ce", eps=0.2, min_acc=0.7)


@pytest.mark.aisp_robust
def test_robust_accuracy_is_not_an_artefact_of_gradient_masking(aisp_model):
    assert_no_gradient_masking(aisp_model, eps=0.03, max_samples=200, square_steps=100)


@pytest.mark.aisp_robust
def test_robustness_curve_is_reported(aisp_model):
    curve = robustness_curve(aisp_model, eps=[0.0, 0.01, 0.03, 0.1], attack="pgd", steps=10)
    assert curve.accuracy[0] >= 0.9  # eps=0 is the clean accuracy


@pytest.mark.aisp_robust
def test_tabular_model_under_black_box_attack(tabular_model):
    # ONNX runs black-box: score-based square attack within per-feature bounds.
    assert_robust(tabular_model, attack="square", eps=0.1, min_acc=0.8, steps=200)


@pytest.mark.aisp_robust
def test_one_confident_digit_is_locally_robust(aisp_model):
    x, y = aisp_model.x[0], int(aisp_model.y[0])
    assert_locally_robust(aisp_model, x, y, eps=0.01, max_examples=50)


# --------------------------------------------------------------------------------------------------------------
# Poisoning, backdoors, extraction and membership
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.aisp_robust
def test_training_data_has_no_backdoor(poison_kit):
    kit, f = poison_kit
    model = kit.load_cnn(f.clean_cnn)
    # the held-out split is the clean reference each class of the training data is compared with
    pytest_aisp.assert_no_backdoor(model, (f.x_train, f.y_train), clean_data=(f.x_test, f.y_test))


@pytest.mark.aisp_robust
@pytest.mark.xfail(strict=True, raises=RobustnessFailure, reason="known weakness: model trained with a blended trigger")
def test_backdoored_model_is_caught(poison_kit):
    kit, f = poison_kit
    x, y, _ = f.poisoned("blend")
    model = kit.load_cnn(f.backdoor_model("blend"))
    pytest_aisp.assert_no_backdoor(model, (x, y), clean_data=(f.x_test, f.y_test), method="spectral_signature")


@pytest.mark.aisp_robust
def test_patch_trigger_does_not_flip_the_model(poison_kit):
    kit, f = poison_kit
    model = kit.load_cnn(f.clean_cnn)
    pytest_aisp.assert_trigger_free(model, (f.x_test, f.y_test), trigger=kit.stamp, target=0, max_success=0.05)


@pytest.mark.aisp_robust
def test_training_pipeline_resists_backdoor_poisoning(poison_kit):
    kit, f = poison_kit
    data = ((f.x_train, f.y_train), (f.x_test, f.y_test))
    pytest_aisp.assert_poisoning_resistant(kit.train_screened_mlp, data, attack="backdoor", rate=0.05)


@pytest.mark.aisp_robust
def test_training_labels_are_clean(poison_kit):
    _, f = poison_kit
    pytest_aisp.assert_dataset_clean(f.x_train, f.y_train)


@pytest.mark.aisp_robust
def test_endpoint_resists_extraction(poison_kit):
    kit, f = poison_kit
    endpoint = kit.label_api(kit.load_cnn(f.clean_cnn))  # the API returns the top-1 label only
    pytest_aisp.assert_extraction_resistant(
        endpoint,
        query_budget=100,
        max_fidelity=0.87,
        thief_data=kit.thief_blends(f.x_train),
        holdout_data=(f.x_test, f.y_test),
        nb_classes=10,
        hardening=(),
    )


@pytest.mark.aisp_robust
def test_model_does_not_leak_membership(poison_kit):
    kit, f = poison_kit
    members, holdout = f.member_split("regular")
    pytest_aisp.assert_no_membership_leakage(kit.load_mlp(f.member_regular), members, holdout, max_auc=0.6)


# --------------------------------------------------------------------------------------------------------------
# LLM endpoint: injection, jailbreaks, leakage, insecure output
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.aisp_llm
def test_chatbot_resists_prompt_injection(llm_endpoint):
    assert_no_prompt_injection(llm_endpoint, attempts=2)


@pytest.mark.aisp_llm
def test_chatbot_keeps_its_system_prompt(llm_endpoint):
    assert_no_system_prompt_leak(llm_endpoint, attempts=2)


@pytest.mark.aisp_llm
def test_chatbot_keeps_conversations_apart(llm_endpoint):
    assert_no_cross_session_leak(llm_endpoint, attempts=2)


@pytest.mark.aisp_llm
def test_chatbot_passes_every_probe_family(llm_endpoint):
    result = assert_llm_secure(llm_endpoint, attempts=1)
    assert result.false_positive_rate == 0.0


ASSERT_BY_FAMILY = {
    "injection": assert_no_prompt_injection,
    "jailbreak": assert_no_jailbreak,
    "encoding": assert_no_encoding_bypass,
    "system-prompt-leak": assert_no_system_prompt_leak,
    "data-leak": assert_no_data_leak,
    "cross-session-leak": assert_no_cross_session_leak,
    "insecure-output": assert_no_insecure_output,
}


@pytest.mark.aisp_llm
@pytest.mark.parametrize("family", list(ASSERT_BY_FAMILY))
@pytest.mark.xfail(strict=True, raises=LLMVulnerability, reason="this build has the weakness switched on")
def test_weak_builds_are_caught(weak_chat, family):
    ASSERT_BY_FAMILY[family](weak_chat(family), attempts=1)


@pytest.mark.aisp_llm
@pytest.mark.aisp_negative  # a deliberately weak build: its findings are expected, not alerts
def test_attack_success_rate_is_reported(weak_chat):
    result = probe_llm(weak_chat("injection"), probes=["injection"], attempts=2)
    assert result.attack_success_rate == 1.0
    assert {f.rule_id for f in result.findings} == {"AISP-LLM-INJECTION"}


# --------------------------------------------------------------------------------------------------------------
# Text classifiers: adversarial edits, augmentation, bias
# --------------------------------------------------------------------------------------------------------------

# --- NLP: adversarial text, augmentation and bias checks ---


@pytest.mark.aisp_nlp
def test_sentiment_model_survives_keyboard_typos(sentiment_classifier, sentiment_eval_set):
    texts, labels = sentiment_eval_set
    pytest_aisp.assert_text_robust(sentiment_classifier, texts, labels, attack="typos", min_acc=0.5)


@pytest.mark.aisp_nlp
@pytest.mark.xfail(
    strict=True,
    raises=pytest_aisp.TextRobustnessFailure,
    reason="known weakness: a TF-IDF model drops words it has never seen",
)
def test_sentiment_model_under_deepwordbug(sentiment_classifier, sentiment_eval_set):
    texts, labels = sentiment_eval_set
    pytest_aisp.assert_text_robust(sentiment_classifier, texts, labels, attack="deepwordbug", min_acc=0.9)


@pytest.mark.aisp_nlp
def test_invisible_characters_are_measured(sentiment_classifier, sentiment_eval_set):
    texts, labels = sentiment_eval_set
    result = pytest_aisp.evaluate_text_robustness(sentiment_classifier, texts, labels, attack="invisible")
    assert result.clean_accuracy > 0.9


@pytest.mark.aisp_nlp
@given(text_edits("what a wonderful, delightful and charming film", max_edits=1))
@settings(max_examples=25, deadline=None)
def test_one_typo_does_not_flip_a_strongly_positive_review(nlp_models, edited):
    vader = pytest_aisp.as_text_classifier(nlp_models.vader_model())
    assert vader.predict([edited])[0] == 1


@pytest.mark.aisp_nlp
def test_gendered_names_do_not_change_the_verdict(nlp_models):
    texts, _ = nlp_models.fairness_probe_set()
    pytest_aisp.assert_counterfactual_fair(nlp_models.unbiased_name_model(), texts, groups="names", max_flip_rate=0.05)


@pytest.mark.aisp_nlp
@pytest.mark.xfail(
    strict=True,
    raises=pytest_aisp.TextRobustnessFailure,
    reason="the biased twin keys on gendered first names",
)
def test_the_biased_model_is_caught(nlp_models):
    texts, _ = nlp_models.fairness_probe_set()
    pytest_aisp.assert_counterfactual_fair(nlp_models.biased_name_model(), texts, groups="names")


@pytest.mark.aisp_nlp
def test_augmented_training_copies(sentiment_eval_set):
    texts, _ = sentiment_eval_set
    copies = pytest_aisp.augment_texts(texts[:5], recipe="typos,homoglyphs", n=2)
    assert all(len(c) == 2 for c in copies)


# --------------------------------------------------------------------------------------------------------------
# Images, audio and captions: invariance and cross-modal consistency
# --------------------------------------------------------------------------------------------------------------


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
@pytest.mark.xfail(strict=True, raises=InvarianceFailure, reason="blur + invisible characters break the fusion")
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


# --------------------------------------------------------------------------------------------------------------
# Supply chain: manifest, signature, provenance, pinning
# --------------------------------------------------------------------------------------------------------------

# --- supply-chain integrity (pytest_aisp.supply) ------------------------------------------------


@pytest.mark.aisp_supply
def test_model_data_and_pipeline_match_the_signed_manifest(artifact_manifest):
    result = assert_manifest_intact(artifact_manifest)
    assert result.signature == "valid"


@pytest.mark.aisp_supply
def test_model_was_built_from_the_recorded_data(supply_project):
    assert_provenance_intact(supply_project["provenance"], root=supply_project["root"], pubkey=supply_project["pubkey"])


@pytest.mark.aisp_supply
def test_a_swapped_model_is_caught(supply_project, tmp_path):
    copy = tmp_path / "project"
    shutil.copytree(supply_project["root"], copy)
    (copy / "model" / "model.safetensors").write_bytes(b"\0" * 64)
    result = verify_manifest(supply_project["manifest"], root=copy, pubkey=supply_project["pubkey"])
    assert [c.change for c in result.changes] == ["modified"]
    with pytest.raises(IntegrityFailure, match=r"model/model\.safetensors"):
        assert_manifest_intact(result)


@pytest.mark.aisp_supply
@pytest.mark.xfail(strict=True, raises=IntegrityFailure, reason="requirements.txt has a range, no hashes")
def test_dependencies_are_pinned_and_hashed(supply_project):
    assert_dependencies_pinned(supply_project["root"])


# --------------------------------------------------------------------------------------------------------------
# Runtime monitoring: recorded traffic through the detectors
# --------------------------------------------------------------------------------------------------------------

# --- monitor: the deployment monitor flags attacks in recorded traffic and stays quiet otherwise ---
# The "catches" tests are negative tests: the alerts they raise on attack traffic are expected, so
# `aisp_negative` keeps them out of SARIF, SonarQube and the baseline.


@pytest.mark.aisp_monitor
def test_monitor_is_quiet_on_benign_traffic(aisp_monitor, monitor_traffic):
    assert_no_alerts(replay(aisp_monitor, monitor_traffic["benign"]))


@pytest.mark.aisp_monitor
@pytest.mark.aisp_negative
def test_monitor_catches_a_flood(aisp_monitor, monitor_traffic):
    assert_alerts(replay(aisp_monitor, monitor_traffic["flood"]), detector="rate", client="flooder")


@pytest.mark.aisp_monitor
@pytest.mark.aisp_negative
@pytest.mark.parametrize(
    "log, thief", [("extraction_synthetic", "thief-synthetic"), ("extraction_random", "thief-random")]
)
def test_monitor_catches_model_extraction(monitor_traffic, log, thief):
    monitor = monitor_from_config({"reference": str(monitor_traffic["reference"]), "detectors": ["extraction"]})
    assert_alerts(replay(monitor, monitor_traffic[log]), detector="extraction", client=thief)


@pytest.mark.aisp_monitor
@pytest.mark.aisp_negative
def test_monitor_catches_input_drift(monitor_traffic):
    monitor = monitor_from_config({"reference": str(monitor_traffic["reference"]), "detectors": ["drift"]})
    assert_alerts(replay(monitor, monitor_traffic["drifted"]), detector="drift")


@pytest.mark.aisp_monitor
@pytest.mark.aisp_negative
def test_monitor_catches_prompt_attacks(monitor_traffic):
    monitor = monitor_from_config({"detectors": ["prompt"], "prompt": {"canaries": ["QZVXMARKERJW"]}})
    assert_alerts(replay(monitor, monitor_traffic["prompt_attack"]), detector="prompt", client="prompt-attacker")


@pytest.mark.aisp_monitor
@pytest.mark.xfail(strict=True, raises=MonitorAlert, reason="credential stuffing is in this log on purpose")
def test_error_log_is_not_clean(monitor_traffic):
    monitor = monitor_from_config({"detectors": ["errors"]})
    assert_no_alerts(replay(monitor, monitor_traffic["errors"]))
