"""Compiling gates (spec errors) and judging them (PASS / FAIL / INVALID, significance)."""

import math

import numpy as np
import pytest
from scipy import stats as sst

from pytest_goni import stats
from pytest_goni.gate_kinds import compile_gate
from pytest_goni.gate_result import GateResult
from pytest_goni.judge import (
    GATE_KINDS,
    N_BOOT,
    GateSpecError,
    SignificanceGate,
    ThresholdGate,
)
from pytest_goni.stats import Metric
from pytest_goni.status import FAIL, INVALID, PASS

UNITS = {
    "speed.gla.latency": "ms",
    "speed.gpt2.latency": "ms",
    "speed.gla.tok_s": "tok/s",
    "train.candidate.val_loss": "",
    "train.gpt2.val_loss": "",
    "mem.gla.state": "B",
    "mem.gla.peak": "MiB",
    "prefill.gla.8192.latency": "s",
    "acc.mqar": "%",
}


def gate(**kw):
    kw.setdefault("id", "g")
    return compile_gate(kw, UNITS)


def spec_error(**kw) -> GateSpecError:
    with pytest.raises(GateSpecError) as info:
        gate(**kw)
    return info.value


# ---- compilation ------------------------------------------------------------------------------

def test_compiled_gate_attributes():
    g = gate(id="loss-ratio", value="train.candidate.val_loss / train.gpt2.val_loss", expect="<= 1.15",
             severity="red-line", why="should_scale rule 1", requires="cuda")
    assert isinstance(g, ThresholdGate) and g.kind == "threshold"
    assert g.id == "loss-ratio"
    assert g.paths == {"train.candidate.val_loss", "train.gpt2.val_loss"}
    assert g.measurements == {"train"}
    assert (g.severity, g.why, g.requires, g.stat, g.confidence, g.min_samples) == \
        ("red-line", "should_scale rule 1", "cuda", "median", None, None)
    assert g.expect.describe() == "<= 1.15"
    w = gate(value="speed.gla.latency", expect="within 5% of speed.gpt2.latency * 2")
    assert w.paths == {"speed.gla.latency", "speed.gpt2.latency"}


def test_unknown_metric_did_you_mean():
    e = spec_error(value="2 * train.candidate.val_los", expect="< 1")
    assert e.key == "value" and e.col == 4
    assert "unknown metric 'train.candidate.val_los'" in e.message
    assert "did you mean 'train.candidate.val_loss'" in e.message
    assert "measurement 'train' produces: train.candidate.val_loss, train.gpt2.val_loss" in e.message


def test_unknown_measurement_lists_measurements():
    e = spec_error(value="trian.candidate.val_loss", expect="< 1")
    assert e.key == "value" and e.col == 0
    assert "no measurement named 'trian'" in e.message and "did you mean 'train'" in e.message
    assert "measurements: acc, mem, prefill, speed, train" in e.message


def test_unit_mismatch_messages():
    e = spec_error(value="speed.gla.latency", expect="< 100 MB")
    assert e.key == "expect"
    assert e.message == "'< 100 MB' compares bytes but the value is a time (ms)"
    e = spec_error(value="speed.gla.latency", expect="<= 1.15")
    assert "'<= 1.15' is a plain number but the value is a time (ms)" in e.message
    assert "'<= 1.15 ms'" in e.message
    e = spec_error(value="speed.gla.latency / speed.gpt2.latency", expect="< 10 ms")
    assert "compares a time but the value is a plain number" in e.message
    e = spec_error(value="speed.gla.tok_s", expect="> 5 GB/s")
    assert "compares a bandwidth but the value is a token rate (tok/s)" in e.message
    e = spec_error(value="speed.gla.latency + mem.gla.state", expect="< 1 s")
    assert e.key == "value" and "adds a time and bytes" in e.message and e.col == 20


def test_units_convert_between_metric_and_threshold():
    # metric in MiB, threshold in MB; metric in s, threshold in ms; metric in %, threshold as ratio
    assert gate(value="mem.gla.peak", expect="<= 200 MB").judge(
        {"mem.gla.peak": Metric.scalar(190, "MiB")}).status == PASS        # 199.2 MB
    assert gate(value="mem.gla.peak", expect="<= 199 MB").judge(
        {"mem.gla.peak": Metric.scalar(190, "MiB")}).status == FAIL
    v = gate(value="prefill.gla.8192.latency", expect="< 300 ms").judge(
        {"prefill.gla.8192.latency": Metric.scalar(0.25, "s")})
    assert v.status == PASS and v.value == 0.25 and v.display == "250 ms"
    assert gate(value="acc.mqar", expect="> 80%").judge({"acc.mqar": Metric.scalar(81, "%")}).status == PASS
    assert gate(value="acc.mqar", expect="> 0.8").judge({"acc.mqar": Metric.scalar(79, "%")}).status == FAIL


@pytest.mark.parametrize("kw, key, fragment", [
    ({"value": "speed.gla.latency", "expect": "<== 1 ms"}, "expect", "not a comparison"),
    ({"value": "speed.gla.latency", "expect": "< 1 mss"}, "expect", "did you mean 'ms'"),
    ({"value": "speed.gla.latency", "expect": 1.15}, "expect", "quote it"),
    ({"value": "speed.gla.latency"}, "expect", "needs 'expect:'"),
    ({"expect": "< 1"}, "value", "needs 'value:'"),
    ({"value": "speed.gla.latency +", "expect": "< 1 ms"}, "value", "ends too soon"),
    ({"value": "exp(speed.gla.latency)", "expect": "< 1 ms"}, "value", "unknown function 'exp'"),
    ({"value": "speed.gla.latency", "expect": "< 1 ms", "stat": "median2"}, "stat", "did you mean 'median'"),
    ({"value": "speed.gla.latency", "expect": "< 1 ms", "confidence": 95}, "confidence", "write 0.95"),
    ({"value": "speed.gla.latency", "expect": "< 1 ms", "confidence": 1}, "confidence", "between 0 and 1"),
    ({"value": "speed.gla.latency", "expect": "< 1 ms", "confidence": 0}, "confidence", "between 0 and 1"),
    ({"value": "speed.gla.latency", "expect": "< 1 ms", "confidence": "high"}, "confidence", "a number"),
    ({"value": "speed.gla.latency", "expect": "< 1 ms", "confidence": True}, "confidence", "a number"),
    ({"value": "speed.gla.latency", "expect": "< 1 ms", "min_samples": 0}, "min_samples", ">= 1"),
    ({"value": "speed.gla.latency", "expect": "< 1 ms", "min_samples": 2.5}, "min_samples", "whole"),
    ({"value": "speed.gla.latency", "expect": "< 1 ms", "stat": "last", "confidence": 0.9},
     "confidence", "'last' has no bootstrap interval"),
    ({"value": "speed.gla.latency", "expect": "< 1 ms", "kind": "fitt"}, "kind", "unknown gate kind 'fitt'"),
    ({"value": "train.candidate.val_loss", "expect": '== "scale"'}, "expect", "kind: decision"),
    ({"value": "speed.gla.latency", "expect": "== true"}, "expect", "true/false but the value is a time"),
    ({"value": "speed.gla.latency", "expect": "within 5% of mem.gla.state"}, "expect",
     "the reference is bytes but the value is a time (ms)"),
    ({"value": "speed.gla.latency", "expect": "within 2 MB of speed.gpt2.latency"}, "expect",
     "allows a deviation of bytes"),
])
def test_spec_errors(kw, key, fragment):
    e = spec_error(**kw)
    assert e.key == key, e
    assert fragment in e.message, e.message


def test_value_syntax_error_column():
    e = spec_error(value="speed.gla.latency / (speed.gpt2.latency", expect="< 1")
    assert e.key == "value" and e.col == 20 and "unclosed '('" in e.message


def test_within_reference_errors_point_into_expect_text():
    e = spec_error(value="speed.gla.latency", expect="within 5% of speed.gpt2.latncy")
    assert e.key == "expect" and e.col == len("within 5% of ")
    assert "did you mean 'speed.gpt2.latency'" in e.message


def test_missing_id_and_bad_gate():
    e = spec_error(id=None, value="speed.gla.latency", expect="< 1 ms")
    assert e.key == "id"
    with pytest.raises(GateSpecError):
        compile_gate(["not", "a", "mapping"], UNITS)  # type: ignore[arg-type]


def test_metric_with_unknown_unit_is_a_spec_error():
    with pytest.raises(GateSpecError, match="declares a unit this plugin does not know"):
        compile_gate({"id": "x", "value": "m.x", "expect": "< 1"}, {"m.x": "parsecs"})


def test_gate_kinds_registry():
    assert GATE_KINDS["threshold"] is ThresholdGate and issubclass(GATE_KINDS["significance"], SignificanceGate)
    assert isinstance(gate(value="speed.gla.latency", expect="< 1 ms", kind="threshold"), ThresholdGate)


# ---- threshold verdicts -----------------------------------------------------------------------

def lat(ms_values, **kw):
    return {"speed.gla.latency": Metric.of(ms_values, "ms", **kw)}


def test_point_pass_and_fail_with_reason():
    g = gate(value="speed.gla.latency", expect="< 100 ms")
    v = g.judge(lat([12.3]))
    assert (v.status, v.value, v.display, v.expect) == (PASS, pytest.approx(0.0123), "12.3 ms", "< 100 ms")
    assert v.margin == pytest.approx(0.877) and v.interval is None
    v = g.judge(lat([123.0]))
    assert v.status == FAIL and v.reason == "measured 123 ms > 100 ms by 23.0%"
    assert v.margin == pytest.approx(-0.23)
    assert not v.passed


def test_evidence_per_metric_path():
    g = gate(value="speed.gpt2.latency / speed.gla.latency", expect=">= 1.2", stat="p99")
    gla, gpt2 = [10.0, 11, 12, 13, 40], [20.0, 21, 22, 23, 90]
    v = g.judge({"speed.gla.latency": Metric.of(gla, "ms"), "speed.gpt2.latency": Metric.of(gpt2, "ms")})
    ev = v.evidence["speed.gla.latency"]
    assert ev["unit"] == "ms" and ev["stat"] == "p99" and ev["n"] == 5
    assert ev["value"] == stats.summarize(gla, "p99")
    assert ev["summary"] == stats.describe(gla)
    assert v.value == pytest.approx(stats.summarize(gpt2, "p99") / stats.summarize(gla, "p99"))
    assert set(v.evidence) == {"speed.gla.latency", "speed.gpt2.latency"}


def test_interval_shown_without_confidence_when_samples_allow():
    g = gate(value="speed.gla.latency", expect="< 100 ms")
    v = g.judge(lat([12.0, 12.1, 12.2, 11.9, 12.4, 12.3]))
    assert v.status == PASS and v.interval is not None
    lo, hi = v.interval
    assert 0.0119 <= lo <= v.value <= hi <= 0.0124
    assert v.display.startswith("12.15 ms [") and v.display.count("ms") == 1
    assert g.judge(lat([12.0, 12.1])).interval is None     # too few: no interval, still a verdict


@pytest.fixture
def tight():
    rng = np.random.default_rng(42)
    return list(rng.normal(12.0, 0.2, 40))


def test_confidence_pass_fail_straddle(tight):
    pass_ = gate(value="speed.gla.latency", expect="< 13 ms", confidence=0.95).judge(lat(tight))
    assert pass_.status == PASS and pass_.interval[1] < 0.013
    assert "whole 95% interval" in pass_.reason
    fail = gate(value="speed.gla.latency", expect="< 11 ms", confidence=0.95).judge(lat(tight))
    assert fail.status == FAIL and fail.interval[0] >= 0.011
    assert fail.reason.startswith("measured 12") and "> 11 ms by" in fail.reason and "breaches" in fail.reason
    med = float(np.median(tight))
    straddle = gate(value="speed.gla.latency", expect=f"< {med:.4f} ms", confidence=0.95).judge(lat(tight))
    assert straddle.status == INVALID
    assert "straddles" in straddle.reason and "spread too wide for its threshold" in straddle.reason
    lo, hi = straddle.interval
    assert lo < med / 1000 < hi


def test_confidence_straddle_message_names_interval():
    samples = [0.9, 1.0, 1.1, 1.2, 1.3, 0.95, 1.25, 1.05, 1.15, 1.1]
    v = compile_gate({"id": "r", "value": "train.candidate.val_loss", "expect": "<= 1.15",
                      "confidence": 0.95}, UNITS).judge({"train.candidate.val_loss": Metric.of(samples)})
    assert v.status == INVALID
    lo, hi = v.interval
    assert v.reason.startswith(f"95% interval [{lo:.4g}, {hi:.4g}] straddles '<= 1.15'")


def test_confidence_needs_enough_samples():
    v = gate(value="speed.gla.latency", expect="< 100 ms", confidence=0.95).judge(lat([10.0, 11.0, 12.0]))
    assert v.status == INVALID
    assert v.reason == "only 3 samples of 'speed.gla.latency', need 5 for a 95% interval"
    assert v.value == pytest.approx(0.011)   # the point value is still reported


def test_min_samples():
    g = gate(value="speed.gla.latency", expect="< 100 ms", min_samples=10)
    v = g.judge(lat([1.0] * 9))
    assert v.status == INVALID and "only 9 samples of 'speed.gla.latency', need 10 (min_samples)" in v.reason
    assert g.judge(lat([1.0] * 10)).status == PASS


def test_exact_metrics_are_constants_in_intervals():
    g = gate(value="mem.gla.state", expect="<= 2 GiB", confidence=0.95)
    v = g.judge({"mem.gla.state": Metric.scalar(2.5e9, "B", exact=True)})
    assert v.status == FAIL and v.display == "2.328 GiB" and v.interval is None
    assert v.reason == "measured 2.328 GiB > 2 GiB by 16.4%"
    # one sample, not marked exact: no interval can be had
    v = g.judge({"mem.gla.state": Metric.scalar(1e9, "B")})
    assert v.status == INVALID and "need 5" in v.reason


def test_division_by_zero_and_nan_fail_with_reason():
    g = gate(value="speed.gla.latency / (speed.gpt2.latency - speed.gpt2.latency)", expect="< 1")
    v = g.judge({"speed.gla.latency": Metric.scalar(1, "ms"), "speed.gpt2.latency": Metric.scalar(2, "ms")})
    assert v.status == FAIL and v.value is None and v.display == "n/a"
    assert v.reason == "division by zero in 'speed.gla.latency / (speed.gpt2.latency - speed.gpt2.latency)'"
    v = gate(value="speed.gla.latency", expect="< 1 ms").judge(lat([math.nan]))
    assert v.status == FAIL and "'speed.gla.latency' is nan" in v.reason


def test_note_goes_into_the_reason():
    g = gate(value="prefill.gla.8192.latency", expect="< 1 s")
    v = g.judge({"prefill.gla.8192.latency": Metric.scalar(math.nan, "s", note="OOM at 65536 tokens")})
    assert v.status == FAIL
    assert "OOM at 65536 tokens" in v.reason and "prefill.gla.8192.latency" in v.reason
    v = g.judge({"prefill.gla.8192.latency": Metric.of([], "s", note="OOM at 65536 tokens")})
    assert v.status == FAIL and "has no samples" in v.reason and "OOM at 65536 tokens" in v.reason


def test_missing_metric_fails():
    v = gate(value="speed.gla.latency", expect="< 1 ms").judge({})
    assert v.status == FAIL
    assert v.reason == "metric 'speed.gla.latency' was not produced by measurement 'speed'"


def test_statistics_are_used():
    samples = [float(x) for x in range(1, 101)]
    for stat in ("median", "mean", "min", "max", "p90", "p99", "std", "iqr", "last"):
        v = gate(value="speed.gla.latency", expect="< 1 s", stat=stat).judge(lat(samples))
        assert v.value == pytest.approx(stats.summarize(samples, stat) / 1000), stat
    # count is a plain number whatever the metric's unit
    v = gate(value="speed.gla.latency", expect=">= 100", stat="count").judge(lat(samples))
    assert v.status == PASS and v.value == 100.0


def test_between_and_equality_and_literal():
    g = gate(value="train.candidate.val_loss", expect="between 0.3 and 0.4")
    loss = lambda x: {"train.candidate.val_loss": Metric.scalar(x)}  # noqa: E731
    assert g.judge(loss(0.35)).status == PASS and g.judge(loss(0.4)).status == PASS
    v = g.judge(loss(0.45))
    assert v.status == FAIL and v.reason.startswith("measured 0.45 above 0.4 by")
    assert gate(value="train.candidate.val_loss", expect="== 1").judge(loss(1.0)).status == PASS
    t = gate(value="train.candidate.val_loss", expect="== true")
    assert t.judge(loss(1.0)).status == PASS and t.judge(loss(0.0)).status == FAIL
    bc = gate(value="train.candidate.val_loss", expect="between 0.3 and 0.4", confidence=0.9)
    tight = {"train.candidate.val_loss": Metric.of([0.34, 0.35, 0.36, 0.35, 0.345, 0.355])}
    assert bc.judge(tight).status == PASS


def test_within_reference_expression():
    g = gate(value="train.candidate.val_loss", expect="within 5% of train.gpt2.val_loss")
    m = lambda a, b: {"train.candidate.val_loss": Metric.scalar(a), "train.gpt2.val_loss": Metric.scalar(b)}  # noqa: E731
    assert g.judge(m(3.1, 3.0)).status == PASS
    v = g.judge(m(3.3, 3.0))
    assert v.status == FAIL and "10% away from the reference 3" in v.reason and "allowed 5%" in v.reason
    assert v.margin == pytest.approx(-1.0)
    t = gate(value="speed.gla.latency", expect="within 2 ms of speed.gpt2.latency")
    def ms(a, b):
        return {"speed.gla.latency": Metric.scalar(a, "ms"), "speed.gpt2.latency": Metric.scalar(b, "ms")}
    assert t.judge(ms(11.0, 10.0)).status == PASS
    v = t.judge(ms(13.0, 10.0))
    assert v.status == FAIL and "3 ms away from the reference 10 ms, allowed 2 ms" in v.reason
    z = gate(value="speed.gla.latency",
             expect="within 5% of speed.gpt2.latency * speed.gla.latency / (speed.gla.latency * 0)")
    assert z.judge(ms(1.0, 1.0)).status == FAIL and "reference: division by zero" in z.judge(ms(1, 1)).reason


def test_within_with_confidence():
    rng = np.random.default_rng(3)
    a = list(rng.normal(10.0, 0.05, 30))
    b = list(rng.normal(10.1, 0.05, 30))
    g = gate(value="speed.gla.latency", expect="within 5% of speed.gpt2.latency", confidence=0.95)
    v = g.judge({"speed.gla.latency": Metric.of(a, "ms"), "speed.gpt2.latency": Metric.of(b, "ms")})
    assert v.status == PASS
    far = [x * 1.2 for x in b]
    v = g.judge({"speed.gla.latency": Metric.of(a, "ms"), "speed.gpt2.latency": Metric.of(far, "ms")})
    assert v.status == FAIL
    # right on the 5% edge, with its own noise: the interval must straddle
    noise = rng.normal(0.0, 0.05, 30)
    edge = list(noise - np.median(noise) + 0.95 * np.median(b))
    v = g.judge({"speed.gla.latency": Metric.of(edge, "ms"), "speed.gpt2.latency": Metric.of(b, "ms")})
    assert v.status == INVALID and "straddles" in v.reason


def test_within_baseline():
    g = gate(value="speed.gla.tok_s", expect="within 5% of baseline")
    m = {"speed.gla.tok_s": Metric.scalar(1000, "tok/s")}
    v = g.judge(m)
    assert v.status == INVALID and "no stored baseline" in v.reason
    assert g.judge(m, baseline=1040.0).status == PASS
    assert g.judge(m, baseline=1100.0).status == FAIL


def test_paired_resampling_keeps_interleaved_pairs():
    # gpt2 ran twice as long as gla on every interleaved pair, with huge drift over the run:
    # the paired interval of the ratio is exactly 2, however wide each side is.
    drift = [1.0, 5.0, 2.0, 9.0, 3.0, 7.0, 4.0, 8.0]
    m = {"speed.gla.latency": Metric.of(drift, "ms"),
         "speed.gpt2.latency": Metric.of([2 * d for d in drift], "ms")}
    v = gate(value="speed.gpt2.latency / speed.gla.latency", expect=">= 1.9", confidence=0.99).judge(m)
    assert v.status == PASS and v.interval == (pytest.approx(2.0), pytest.approx(2.0))


def test_bootstrap_interval_matches_theory_for_the_mean():
    rng = np.random.default_rng(7)
    x = rng.normal(50.0, 5.0, 400)
    v = gate(value="speed.gla.latency", expect="< 1 s", stat="mean", confidence=0.95).judge(lat(list(x)))
    half = 1.96 * x.std(ddof=1) / math.sqrt(x.size) / 1000
    lo, hi = v.interval
    assert (hi - lo) / 2 == pytest.approx(half, rel=0.12)
    assert (lo + hi) / 2 == pytest.approx(x.mean() / 1000, rel=1e-3)


def test_undefined_bootstrap_replicates_make_a_confident_gate_invalid():
    num = [1.0] * 7
    den = [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]   # median 1, but many resamples have median 0
    m = {"speed.gla.latency": Metric.of(num, "ms"), "speed.gpt2.latency": Metric.of(den, "ms")}
    g = gate(value="speed.gla.latency / speed.gpt2.latency", expect="< 2", confidence=0.95)
    v = g.judge(m)
    assert v.status == INVALID and f"of {N_BOOT} bootstrap resamples have no finite value" in v.reason
    ok = gate(value="speed.gla.latency / speed.gpt2.latency", expect="< 2").judge(m)
    assert ok.status == PASS and ok.interval is None


def test_judging_is_deterministic(tight):
    g = gate(value="speed.gla.latency", expect="< 13 ms", confidence=0.95)
    assert g.judge(lat(tight)).interval == g.judge(lat(tight)).interval


# ---- significance -----------------------------------------------------------------------------

def sig(**kw):
    kw.setdefault("kind", "significance")
    kw.setdefault("a", "train.candidate.val_loss")
    kw.setdefault("b", "train.gpt2.val_loss")
    return gate(**kw)


def losses(a, b):
    return {"train.candidate.val_loss": Metric.of(a), "train.gpt2.val_loss": Metric.of(b)}


A = [2.90, 2.92, 2.88, 2.91, 2.89, 2.93, 2.90, 2.87, 2.91, 2.90]
B = [3.00, 3.02, 2.99, 3.03, 3.01, 2.98, 3.00, 3.02, 3.01, 2.99]


def test_welch_pass_and_p_value_matches_scipy():
    g = sig(expect="a < b", test="welch")
    assert isinstance(g, SignificanceGate) and g.measurements == {"train"}
    v = g.judge(losses(A, B))
    assert v.status == PASS
    p = sst.ttest_ind(A, B, equal_var=False, alternative="less").pvalue
    assert v.details["p"] == pytest.approx(p, rel=1e-9)
    assert v.value == pytest.approx(np.mean(A) - np.mean(B))
    ci = sst.ttest_ind(A, B, equal_var=False).confidence_interval(0.95)
    assert v.interval == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert "one-sided Welch p" in v.reason and v.margin > 0
    assert v.expect == "train.candidate.val_loss < train.gpt2.val_loss (Welch, alpha 0.05)"


def test_welch_direction_and_not_significant():
    assert sig(expect="a > b").judge(losses(A, B)).status == FAIL          # wrong direction
    assert sig(expect="b > a").judge(losses(A, B)).status == PASS          # same as a < b
    assert sig(expect="a != b").judge(losses(A, B)).status == PASS
    noisy = [x + d for x, d in zip(A, [0.3, -0.3] * 5)]
    v = sig(expect="a < b").judge(losses(noisy, [x + 0.02 for x in noisy[::-1]]))
    assert v.status == FAIL and "is not significant" in v.reason and v.margin < 0


def test_welch_alpha_and_zero_variance():
    g = sig(expect="a < b", alpha=1e-30)
    assert g.judge(losses(A, B)).status == FAIL
    assert sig(expect="a < b").judge(losses([1.0, 1.0, 1.0], [2.0, 2.0, 2.0])).status == PASS
    assert sig(expect="a != b").judge(losses([1.0, 1.0], [1.0, 1.0])).status == FAIL
    assert sig(expect="a < b", confidence=0.99).alpha == pytest.approx(0.01)


def test_two_sigma_rule_of_the_seed():
    g = sig(expect="a < b", test="two-sigma")
    v = g.judge(losses(A, B))
    sa, sb = np.std(A, ddof=1), np.std(B, ddof=1)
    threshold = 2 * math.sqrt(sa**2 + sb**2)
    diff = np.mean(A) - np.mean(B)
    assert -diff > threshold and v.status == PASS
    assert v.details["threshold"] == pytest.approx(threshold)
    assert v.margin == pytest.approx((-diff - threshold) / threshold)
    # a difference well inside two sigma is not significant, though Welch would call it so
    a = [1.00, 1.10, 0.90, 1.05, 0.95, 1.02, 0.98, 1.00, 1.08, 0.92] * 3
    b = [x + 0.08 for x in a]
    assert sig(expect="a < b", test="two-sigma").judge(losses(a, b)).status == FAIL
    assert sig(expect="a < b", test="welch").judge(losses(a, b)).status == PASS
    assert sig(expect="a < b", test="2-sigma").test == "two-sigma"


def test_significance_needs_two_samples():
    v = sig(expect="a < b").judge(losses([2.9], B))
    assert v.status == INVALID
    assert "only 1 sample of a ('train.candidate.val_loss'), need at least 2" in v.reason
    v = sig(expect="a < b", min_samples=5).judge(losses(A[:3], B))
    assert v.status == INVALID and "(min_samples)" in v.reason


def test_significance_over_paired_expressions():
    units = {"speed.gla.latency": "ms", "speed.gpt2.latency": "ms", "speed2.gla.latency": "ms"}
    g = compile_gate({"id": "s", "kind": "significance", "a": "speed.gla.latency / speed.gpt2.latency",
                      "b": "1", "expect": "a < b"}, units)
    gla, gpt2 = [5.0, 6.0, 5.5, 5.2, 6.1], [10.0, 11.0, 10.5, 10.0, 12.0]
    m = {"speed.gla.latency": Metric.of(gla, "ms"), "speed.gpt2.latency": Metric.of(gpt2, "ms")}
    v = g.judge(m)
    assert v.status == INVALID and "only 1 sample of b" in v.reason   # a constant has no spread
    g = compile_gate({"id": "s", "kind": "significance", "a": "speed.gla.latency / speed.gpt2.latency",
                      "b": "speed.gpt2.latency / speed.gpt2.latency", "expect": "a < b"}, units)
    v = g.judge(m)
    assert v.status == PASS and v.details["n_a"] == 5
    m["speed.gpt2.latency"] = Metric.of(gpt2[:4], "ms")
    v = g.judge(m)
    assert v.status == INVALID and "cannot be paired" in v.reason


@pytest.mark.parametrize("kw, key, fragment", [
    ({"a": "speed.gla.latency", "expect": "a < b"}, "b", "but 'a' is a time"),
    ({"expect": "a << b"}, "expect", "'a < b', 'a > b' or 'a != b'"),
    ({"expect": "a < b", "test": "ttest"}, "test", "known: welch, two-sigma"),
    ({"expect": "a < b", "alpha": 1.5}, "alpha", "between 0 and 1"),
    ({"expect": "a < b", "value": "x.y"}, "value", "no 'value'"),
    ({"expect": "a < b", "a": "train.candidate.val_los"}, "a", "did you mean"),
    ({"expect": "a < b", "stat": "median"}, "stat", "compares means"),
])
def test_significance_spec_errors(kw, key, fragment):
    with pytest.raises(GateSpecError) as info:
        sig(**kw)
    assert info.value.key == key and fragment in info.value.message


def test_significance_with_units_displays_them():
    g = compile_gate({"id": "s", "kind": "significance", "a": "speed.gla.latency", "b": "speed.gpt2.latency",
                      "expect": "a < b", "test": "two-sigma"}, UNITS)
    v = g.judge({"speed.gla.latency": Metric.of([10.0, 10.2, 9.8], "ms"),
                 "speed.gpt2.latency": Metric.of([20.0, 20.4, 19.6], "ms")})
    assert v.status == PASS and v.display.startswith("-10 ms (2 sigma = ")
    assert v.value == pytest.approx(-0.010)


def test_gate_results_carry_the_whole_verdict_to_json():
    import json

    where = GateResult(spec="s", gate="g", file="s.yaml", line=3, status="SKIP")
    v = gate(value="speed.gla.latency", expect="< 1 ms").judge(lat([math.nan], note="OOM at 65536"))
    out = json.loads(json.dumps(where.with_verdict(v).to_json(), allow_nan=False))
    assert out["status"] == FAIL and out["evidence"]["speed.gla.latency"]["value"] == "nan"
    v = sig(expect="a < b").judge(losses(A, B))
    out = json.loads(json.dumps(where.with_verdict(v).to_json(), allow_nan=False))
    assert out["details"]["test"] == "welch" and isinstance(out["interval"], list)
    assert out["details"]["p"] == v.details["p"] and out["details"]["t"] == v.details["t"]
    assert GateResult.from_dict(where.with_verdict(v).to_dict()) == where.with_verdict(v)
