"""Poisoning, backdoor, extraction and membership checks, as an ML team writes them."""

import pytest

import pytest_aisp
from pytest_aisp import RobustnessFailure

pytestmark = pytest.mark.aisp


def test_training_data_has_no_backdoor(poison_kit):
    kit, f = poison_kit
    model = kit.load_cnn(f.clean_cnn)
    pytest_aisp.assert_no_backdoor(model, (f.x_train, f.y_train), method="activation_clustering")


@pytest.mark.xfail(strict=True, raises=RobustnessFailure, reason="known weakness: BadNets-poisoned model")
def test_backdoored_model_is_caught(poison_kit):
    kit, f = poison_kit
    model = kit.load_cnn(f.backdoor_cnn)
    pytest_aisp.assert_no_backdoor(model, (f.x_poisoned, f.y_poisoned), method="spectral_signature")


def test_patch_trigger_does_not_flip_the_model(poison_kit):
    kit, f = poison_kit
    model = kit.load_cnn(f.clean_cnn)
    pytest_aisp.assert_trigger_free(
        model, (f.x_test, f.y_test), trigger=kit.stamp, target=0, max_success=0.05
    )


def test_training_pipeline_resists_backdoor_poisoning(poison_kit):
    kit, f = poison_kit
    data = ((f.x_train, f.y_train), (f.x_test, f.y_test))
    pytest_aisp.assert_poisoning_resistant(kit.train_screened_mlp, data, attack="backdoor", rate=0.05)


def test_training_labels_are_clean(poison_kit):
    _, f = poison_kit
    pytest_aisp.assert_dataset_clean(f.x_train, f.y_train)


def test_endpoint_resists_extraction(poison_kit):
    kit, f = poison_kit
    endpoint = kit.label_api(kit.load_cnn(f.clean_cnn))  # the API returns the top-1 label only
    pytest_aisp.assert_extraction_resistant(
        endpoint, query_budget=100, max_fidelity=0.87, thief_data=kit.thief_blends(f.x_train),
        holdout_data=(f.x_test, f.y_test), nb_classes=10, hardening=(),
    )


def test_model_does_not_leak_membership(poison_kit):
    kit, f = poison_kit
    members, holdout = f.member_split("regular")
    pytest_aisp.assert_no_membership_leakage(kit.load_mlp(f.member_regular), members, holdout, max_auc=0.6)
