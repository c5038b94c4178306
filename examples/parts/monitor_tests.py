# --- monitor: the deployment monitor flags attacks in recorded traffic and stays quiet otherwise ---
import pytest

from pytest_aisp import MonitorAlert, assert_alerts, assert_no_alerts, replay
from pytest_aisp.monitor import monitor_from_config


@pytest.mark.aisp_monitor
def test_monitor_is_quiet_on_benign_traffic(aisp_monitor, monitor_traffic):
    assert_no_alerts(replay(aisp_monitor, monitor_traffic["benign"]))


@pytest.mark.aisp_monitor
def test_monitor_catches_a_flood(aisp_monitor, monitor_traffic):
    assert_alerts(replay(aisp_monitor, monitor_traffic["flood"]), detector="rate", client="flooder")


@pytest.mark.aisp_monitor
@pytest.mark.parametrize("log, thief", [("extraction_synthetic", "thief-synthetic"),
                                        ("extraction_random", "thief-random")])
@pytest.mark.aisp_monitor
def test_monitor_catches_model_extraction(monitor_traffic, log, thief):
    monitor = monitor_from_config({"reference": str(monitor_traffic["reference"]), "detectors": ["extraction"]})
    assert_alerts(replay(monitor, monitor_traffic[log]), detector="extraction", client=thief)


@pytest.mark.aisp_monitor
def test_monitor_catches_input_drift(monitor_traffic):
    monitor = monitor_from_config({"reference": str(monitor_traffic["reference"]), "detectors": ["drift"]})
    assert_alerts(replay(monitor, monitor_traffic["drifted"]), detector="drift")


@pytest.mark.aisp_monitor
def test_monitor_catches_prompt_attacks(monitor_traffic):
    monitor = monitor_from_config({"detectors": ["prompt"], "prompt": {"canaries": ["QZVXMARKERJW"]}})
    assert_alerts(replay(monitor, monitor_traffic["prompt_attack"]), detector="prompt", client="prompt-attacker")


@pytest.mark.aisp_monitor
@pytest.mark.xfail(strict=True, raises=MonitorAlert, reason="credential stuffing is in this log on purpose")
def test_error_log_is_not_clean(monitor_traffic):
    monitor = monitor_from_config({"detectors": ["errors"]})
    assert_no_alerts(replay(monitor, monitor_traffic["errors"]))
