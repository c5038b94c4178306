"""The aisp_monitor fixture and the assertions, as a user's test suite sees them (pytester)."""

from __future__ import annotations

import pytest


def test_aisp_monitor_fixture_replays_and_asserts(pytester, traffic):
    pytester.makepyprojecttoml(f"""
        [tool.aisp.monitor]
        reference = "{traffic['reference']}"
        detectors = ["rate", "extraction"]
        [tool.aisp.monitor.rate]
        rate_per_s = 10
    """)
    pytester.makepyfile(f"""
        import pytest
        from pytest_aisp import MonitorAlert, assert_alerts, assert_no_alerts, replay

        def test_benign_is_quiet(aisp_monitor):
            assert_no_alerts(replay(aisp_monitor, {str(traffic['benign'])!r}))

        def test_flood_is_caught(aisp_monitor):
            result = replay(aisp_monitor, {str(traffic['flood'])!r})
            assert_alerts(result, detector="rate", client="flooder")

        def test_thief_is_caught(aisp_monitor):
            assert_alerts(replay(aisp_monitor, {str(traffic['extraction_random'])!r}),
                          detector="extraction", client="thief-random")

        @pytest.mark.xfail(strict=True, raises=MonitorAlert)
        def test_flood_is_not_benign(aisp_monitor):
            assert_no_alerts(replay(aisp_monitor, {str(traffic['flood'])!r}))

        def test_fresh_monitor_per_test(aisp_monitor):
            assert aisp_monitor.events_seen == 0 and not aisp_monitor.alerts
    """)
    result = pytester.runpytest("-p", "no:cacheprovider", "--junitxml=junit.xml")
    result.assert_outcomes(passed=4, xfailed=1)
    junit = (pytester.path / "junit.xml").read_text()
    assert "AISP-MON-RATE" in junit


@pytest.mark.slow
def test_aisp_monitor_with_xdist(pytester, traffic):
    pytester.makepyprojecttoml('[tool.aisp.monitor]\ndetectors = ["rate"]\n')
    pytester.makepyfile(f"""
        import pytest
        from pytest_aisp import assert_alerts, replay

        @pytest.mark.parametrize("run", range(4))
        def test_flood(aisp_monitor, run):
            assert_alerts(replay(aisp_monitor, {str(traffic['flood'])!r}), detector="rate")
    """)
    result = pytester.runpytest("-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(passed=4)


def test_bad_monitor_config_errors_instead_of_failing(pytester):
    pytester.makepyprojecttoml('[tool.aisp.monitor]\ndetectors = ["telepathy"]\n')
    pytester.makepyfile("""
        def test_x(aisp_monitor):
            pass
    """)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*unknown monitor detectors*telepathy*"])


