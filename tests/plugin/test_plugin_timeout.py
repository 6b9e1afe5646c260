"""pytest-timeout keeps working around measurements that set their own SIGALRM deadline."""

from __future__ import annotations

import signal
import textwrap
import time

import pytest

from pytest_goni.context import MeasurementTimeout
from pytest_goni.runner import deadline_alarm

pytestmark = pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs SIGALRM timers (POSIX)")


def test_an_outer_timer_is_given_back_what_it_had_left() -> None:
    fired: list[int] = []
    previous = signal.signal(signal.SIGALRM, lambda *a: fired.append(1))
    try:
        signal.setitimer(signal.ITIMER_REAL, 5.0)
        with deadline_alarm(1.0):  # fires before the outer timer: replaces it for a while
            time.sleep(0.05)
        left, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 4.0 < left < 5.0  # restored, less the time taken
        with pytest.raises(MeasurementTimeout):
            with deadline_alarm(0.05):
                time.sleep(1.0)
        assert signal.getitimer(signal.ITIMER_REAL)[0] > 3.0
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert fired == []


def test_an_outer_timer_firing_first_is_left_alone() -> None:
    previous = signal.signal(signal.SIGALRM, signal.SIG_IGN)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        with deadline_alarm(30.0):
            assert signal.getitimer(signal.ITIMER_REAL)[0] <= 0.5  # still the outer one
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_pytest_timeout_stops_a_long_measurement(pytester: pytest.Pytester) -> None:
    pytest.importorskip("pytest_timeout")
    pytester.makeconftest("""
        import time
        from pytest_goni.stats import Metric

        def pytest_goni_register(registries):
            @registries.measurement_kind("nap", schema={"type": "object"}, metrics=lambda p: {"x": "s"})
            def nap(ctx, params):
                time.sleep(20)
                return {"x": Metric.scalar(1.0, "s")}
    """)
    pytester.path.joinpath("slow.yaml").write_text(textwrap.dedent("""\
        goni: 1
        id: slow
        measurements:
          m: {kind: nap, timeout: 60}
        gates:
          - {id: g, value: m.x, expect: "< 2 s"}
        """))
    # 6 s, not 2: the item's setup imports torch (the worker's device), which took over 2 s on a loaded
    # 2-core host, and pytest-timeout counts setup too (an ERROR at setup, not the measurement's FAIL)
    res = pytester.runpytest_subprocess("--goni-spec", "slow.yaml", "--timeout", "6", "--timeout-method", "signal")
    res.assert_outcomes(failed=1)  # had the runner cancelled pytest-timeout's timer, the gate would pass
    assert "Timeout (>6.0s)" in res.stdout.str()
