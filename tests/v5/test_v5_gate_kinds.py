"""The gate kinds V5 needs, driven through pytest as a user would: decision (should_scale as data),
grade (practical thresholds + graduation), fit (L = a N^-b + c) and paired significance."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pytest_goni.gate_kinds.fit import fit_law, law
from pytest_goni.gate_kinds.paired import paired_p

from .conftest import results, run_spec

SHOULD_SCALE = """\
goni: 1
id: ss
measurements:
  m: {kind: given, samples: {cand_loss: __CL__, gpt2_loss: 3.0, state: __ST__, speed: __SP__, mem: __ME__}}
gates:
  - id: should-scale
    kind: decision
    values:
      loss_ratio: m.cand_loss / m.gpt2_loss
      statefulness_ratio: m.state
      speed_ratio: m.speed
      memory_ratio: m.mem
    counts:
      advantages: {of: [statefulness_ratio, speed_ratio, memory_ratio], expect: "> 1.1"}
    rules:
      - {when: {loss_ratio: "> 1.15"}, decide: no, reason: Loss too high}
      - {when: {advantages: ">= 2"}, decide: yes, reason: "Has {advantages} clear advantages"}
      - {when: {advantages: "== 1", loss_ratio: "< 1.05"}, decide: yes, reason: Balanced trade-off}
      - {decide: no, reason: No clear advantage}
    expect: yes
"""


def should_scale(p: pytest.Pytester, loss: float, state: float, speed: float, mem: float) -> dict:
    text = (SHOULD_SCALE.replace("__CL__", str(loss)).replace("__ST__", str(state))
            .replace("__SP__", str(speed)).replace("__ME__", str(mem)))
    run_spec(p, text)
    return results(p)["specs"][0]["gates"][0]


def python_should_scale(m: dict) -> tuple[bool, str]:
    """The seed's function verbatim (v5-gpt2-gates.md lines 408-425), the oracle for the data rules."""
    if m["loss_ratio"] > 1.15:
        return False, "Loss too high"
    advantages = sum(v > 1.1 for v in [m["statefulness_ratio"], m["speed_ratio"], m["memory_ratio"]])
    if advantages >= 2:
        return True, f"Has {advantages} clear advantages"
    elif advantages == 1 and m["loss_ratio"] < 1.05:
        return True, "Balanced trade-off"
    return False, "No clear advantage"


@pytest.mark.parametrize("loss,state,speed,mem", [
    (3.6, 2.0, 2.0, 2.0),     # rule 1 decides despite three advantages
    (3.3, 1.5, 1.2, 1.0),     # two advantages
    (3.0, 1.5, 1.0, 1.0),     # one advantage, balanced loss
    (3.3, 1.5, 1.0, 1.0),     # one advantage, loss 10% worse
])
def test_decision_matches_the_seeds_function(given: pytest.Pytester, loss, state, speed, mem) -> None:
    g = should_scale(given, loss, state, speed, mem)
    want, why = python_should_scale({"loss_ratio": loss / 3.0, "statefulness_ratio": state, "speed_ratio": speed,
                                     "memory_ratio": mem})
    assert g["status"] == ("PASS" if want else "FAIL")
    assert why in g["display"]
    rules = g["details"]["rules"]
    assert len(rules) == 4 and all("outcome" in r for r in rules)
    decided = [r for r in rules if r["outcome"] == "met"]
    assert len(decided) == 1 and all(r["outcome"] == "not reached" for r in rules[decided[0]["rule"]:])


def test_decision_reports_each_rule_in_the_terminal(given: pytest.Pytester) -> None:
    text = SHOULD_SCALE.replace("__CL__", "3.6").replace("__ST__", "2").replace("__SP__", "1").replace("__ME__", "1")
    res = run_spec(given, text)
    assert res.ret == 1
    out = res.stdout.str()
    assert "Loss too high" in out and "rule 1" in out and "not reached" in out


def test_decision_without_a_value_is_invalid_not_a_no(given: pytest.Pytester) -> None:
    text = SHOULD_SCALE.replace("__CL__", "3.0").replace("__ST__", "1.5").replace("__SP__", "1").replace(
        "__ME__", ".nan")
    run_spec(given, text)
    g = results(given)["specs"][0]["gates"][0]
    assert g["status"] == "INVALID" and "memory_ratio" in g["reason"]


def test_decision_reads_invalid_metrics_as_invalid(given: pytest.Pytester) -> None:
    text = SHOULD_SCALE.replace("__CL__", "3.0").replace("__ST__", "1.5").replace("__SP__", "1.5").replace(
        "__ME__", "1").replace("samples:", "invalid: {state: task failed its check}, samples:")
    run_spec(given, text)
    g = results(given)["specs"][0]["gates"][0]
    assert g["status"] == "INVALID" and "task failed its check" in g["reason"]


def _invalid_state(loss: str, speed: str, mem: str) -> str:
    return (SHOULD_SCALE.replace("__CL__", loss).replace("__ST__", "1.0").replace("__SP__", speed)
            .replace("__ME__", mem).replace("samples:", "invalid: {state: neither model beats chance}, samples:"))


@pytest.mark.parametrize("loss,speed,mem,status,said", [
    ("3.6", "1.0", "1.0", "FAIL", "no: Loss too high"),                   # rule 1 decides before the invalid value
    ("3.0", "1.5", "1.5", "PASS", "yes: Has 2-3 clear advantages"),       # >= 2 whatever statefulness is
    ("3.3", "1.0", "1.0", "FAIL", "no: No clear advantage"),              # 0-1 advantages; rule 3's loss < 1.05 fails
])
def test_decision_decides_without_an_invalid_value_when_no_reached_rule_depends_on_it(
        given: pytest.Pytester, loss, speed, mem, status, said) -> None:
    """A statefulness ratio that is INVALID (neither model beats chance) leaves should_scale decided by
    the rules that do not need it: an earlier rule, or an advantage count that holds at every count
    the unknown member allows; the invalid value is named in the reason."""
    run_spec(given, _invalid_state(loss, speed, mem))
    g = results(given)["specs"][0]["gates"][0]
    assert g["status"] == status and g["display"].startswith(said), (g["display"], g["reason"])
    assert "neither model beats chance" in g["reason"]


def test_decision_is_invalid_when_a_reached_rule_depends_on_an_invalid_value(given: pytest.Pytester) -> None:
    run_spec(given, _invalid_state("3.0", "1.5", "1.0"))     # 1-2 advantages: rule 2 (>= 2) depends on it
    g = results(given)["specs"][0]["gates"][0]
    assert g["status"] == "INVALID", g["reason"]
    assert "rule 2" in g["reason"] and "statefulness_ratio (m.state: neither model beats chance)" in g["reason"]


def test_decision_spec_errors_name_the_rule(given: pytest.Pytester) -> None:
    text = SHOULD_SCALE.replace("{when: {advantages: \">= 2\"}", "{when: {advantage: \">= 2\"}")
    text = text.replace("__CL__", "3").replace("__ST__", "1").replace("__SP__", "1").replace("__ME__", "1")
    res = run_spec(given, text)
    assert "rule 2 reads 'advantage'" in res.stdout.str()


GRADE = """\
goni: 1
id: gr
measurements:
  m: {kind: given, samples: {loss: __L__, state: __S__, speed: __P__, mem: __M__}}
gates:
  - id: graduation
    kind: grade
    grades: [Good enough, Promising, Excellent]
    metrics:
      validation_loss: {value: m.loss, levels: ["<= 1.15", "<= 1.05", "< 1.0"]}
      statefulness: {value: m.state, levels: [">= 1.1", ">= 1.25", ">= 1.5"]}
      inference_speed: {value: m.speed, levels: [">= 1.2", ">= 1.5", ">= 2.0"]}
      memory: {value: m.mem, levels: ["<= 1.0", "<= 0.8", "<= 0.5"]}
    require: {validation_loss: Good enough}
    graduate:
      - {at_least: Excellent, count: 1}
      - {at_least: Promising, count: 2}
"""


@pytest.mark.parametrize("loss,state,speed,mem,status,why", [
    (1.10, 1.30, 1.40, 1.0, "FAIL", "no graduation clause"),   # seed pass example 1: 30% + 40% -> one Promising
    (0.92, 1.0, 1.0, 0.6, "PASS", "at least Excellent"),       # seed pass example 2: loss 8% better -> Excellent
    (1.10, 1.15, 1.25, 0.95, "FAIL", "no graduation clause"),  # seed fail example 1: all Good enough
    (1.20, 1.0, 3.0, 1.0, "FAIL", "below the required"),       # seed fail example 2: loss 20% worse, even with speed
    (1.04, 1.3, 1.0, 1.0, "PASS", "at least Promising"),       # two Promising
])
def test_grade_on_the_seeds_examples(given: pytest.Pytester, loss, state, speed, mem, status, why) -> None:
    text = GRADE.replace("__L__", str(loss)).replace("__S__", str(state)).replace("__P__", str(speed)).replace(
        "__M__", str(mem))
    run_spec(given, text)
    g = results(given)["specs"][0]["gates"][0]
    assert g["status"] == status, g["reason"]
    assert why in g["reason"]


@pytest.mark.parametrize("loss,speed,status,why", [
    (0.92, 1.0, "PASS", "holds whatever the unknown grades are"),   # Excellent loss: GO whatever statefulness is
    (1.10, 1.0, "INVALID", "graduation depends on statefulness"),  # an Excellent statefulness would graduate it
    (1.20, 3.0, "FAIL", "below the required"),                      # FIX FIRST whatever statefulness is
])
def test_grade_with_an_invalid_metric_grades_only_what_depends_on_it(given: pytest.Pytester, loss, speed, status,
                                                                     why) -> None:
    text = GRADE.replace("__L__", str(loss)).replace("__S__", "1.0").replace("__P__", str(speed)).replace(
        "__M__", "1.0").replace("samples:", "invalid: {state: neither model beats chance}, samples:")
    run_spec(given, text)
    g = results(given)["specs"][0]["gates"][0]
    assert g["status"] == status, g["reason"]
    assert why in g["reason"]


def test_fit_recovers_a_known_law() -> None:
    n = np.repeat([1e5, 3e5, 1e6, 3e6, 1e7], 3)
    rng = np.random.default_rng(0)
    loss = 40.0 * n ** -0.3 + 1.5
    loss = loss * (1 + 0.002 * rng.standard_normal(loss.size))
    f = fit_law(n, loss)
    assert f["b"] == pytest.approx(0.3, abs=0.05)
    assert f["c"] == pytest.approx(1.5, abs=0.15)
    assert law(f, 1e8) == pytest.approx(40.0 * 1e8 ** -0.3 + 1.5, rel=0.03)


# The H200 run of 2026-12-01 (commit bd482ed, results/v5-2026-12-01-h200-v2/): GPT-2's validation
# losses at its 3.5M and 8M rungs, three seeds. Two sizes and c = 0 fix the power law exactly; the
# fit returned a = 1.006, b = -0.098 (4.45 at 3.5M against a measured 5.17): L-BFGS-B stopped on its
# relative-reduction test, the Huber sum being ~1e-4.
H200_N = [3699520.0] * 3 + [15762944.0] * 3
H200_GPT2 = [5.172, 5.175, 5.175, 5.11, 5.113, 5.124]


def test_fit_passes_through_two_rungs_of_nearly_flat_losses() -> None:
    n, loss = np.array(H200_N), np.array(H200_GPT2)
    f = fit_law(n, loss, fix_c=0.0)
    exact_b = math.log(loss[:3].mean() / loss[3:].mean()) / math.log(n[3] / n[0])
    assert f["b"] == pytest.approx(exact_b, abs=0.001)
    for lo, hi in ((0, 3), (3, 6)):
        assert law(f, n[lo]) == pytest.approx(float(np.median(loss[lo:hi])), abs=0.003)


def test_fit_gate_reads_the_h200_gpt2_law(given: pytest.Pytester) -> None:
    samples = ", ".join(f"{k}{i}: {v}" for i, (k, v) in enumerate(
        [("n", H200_N[0]), ("n", H200_N[3]), ("y", H200_GPT2[:3]), ("y", H200_GPT2[3:])]))
    text = f"""\
goni: 1
id: ft
measurements:
  m: {{kind: given, samples: {{{samples}}}}}
gates:
  - id: gpt2-b
    kind: fit
    series:
      gpt2: {{x: [m.n0, m.n1], y: [m.y2, m.y3]}}
    fix: {{c: 0}}
    value: gpt2.b
    expect: between 0.006 and 0.010
    n_boot: 20
"""
    run_spec(given, text)
    g = results(given)["specs"][0]["gates"][0]
    assert g["status"] == "PASS", g["reason"]


FIT = """\
goni: 1
id: ft
measurements:
  m: {kind: given, samples: {n1: 1e5, n2: 1e6, n3: 1e7, a1: __A1__, a2: __A2__, a3: __A3__,
                             b1: __B1__, b2: __B2__, b3: __B3__}}
gates:
  - id: parallel
    kind: fit
    series:
      cand: {x: [m.n1, m.n2, m.n3], y: [m.a1, m.a2, m.a3]}
      gpt2: {x: [m.n1, m.n2, m.n3], y: [m.b1, m.b2, m.b3]}
    __FIX__
    predict: {at_big: 1e8}
    value: cand.b - gpt2.b
    expect: ">= -0.05"
    confidence: 0.9
    n_boot: 30
"""


def _fit_spec(b_cand: float, b_gpt2: float, fix: str = "") -> str:
    text = FIT.replace("__FIX__", fix)
    for tag, b in (("A", b_cand), ("B", b_gpt2)):
        for i, n in enumerate((1e5, 1e6, 1e7), 1):
            base = 30.0 * n ** -b + 2.0
            text = text.replace(f"__{tag}{i}__", str([round(base * (1 + d), 6) for d in (-0.002, 0.0, 0.002)]))
    return text


def test_fit_gate_passes_parallel_curves_and_fails_a_flatter_one(given: pytest.Pytester) -> None:
    run_spec(given, _fit_spec(0.3, 0.3))
    g = results(given)["specs"][0]["gates"][0]
    assert g["status"] == "PASS", g["reason"]
    assert "L = " in g["reason"] and g["details"]["fits"]["cand"]["b"] == pytest.approx(0.3, abs=0.05)
    run_spec(given, _fit_spec(0.15, 0.3))
    g = results(given)["specs"][0]["gates"][0]
    assert g["status"] == "FAIL", g["reason"]


def test_fit_with_too_few_sizes_is_invalid(given: pytest.Pytester) -> None:
    text = _fit_spec(0.3, 0.3).replace("[m.n1, m.n2, m.n3]", "[m.n1, m.n2, m.n2]")
    run_spec(given, text)
    g = results(given)["specs"][0]["gates"][0]
    assert g["status"] == "INVALID" and "not determined" in g["reason"]
    # with c fixed two sizes determine a and b
    text2 = _fit_spec(0.3, 0.3, fix="fix: {c: 2.0}").replace("[m.n1, m.n2, m.n3]", "[m.n1, m.n2, m.n2]")
    run_spec(given, text2)
    assert results(given)["specs"][0]["gates"][0]["status"] == "PASS"


SIG = """\
goni: 1
id: sg
measurements:
  m: {kind: given, samples: {a: __A__, b: __B__}}
gates:
  - id: paired
    kind: significance
    a: m.a
    b: m.b
    expect: a > b
    test: paired-t
    also: [two-sigma]
    min_effect: __E__
"""


def test_paired_test_sees_through_seed_spread_where_two_sigma_cannot(given: pytest.Pytester) -> None:
    # seed-to-seed spread is large, but every pair improves by ~0.1: paired-t significant, 2-sigma not
    a = [0.5, 0.7, 0.9, 0.6, 0.8]
    b = [x - 0.1 + 0.005 * i for i, x in enumerate(a)]
    run_spec(given, SIG.replace("__A__", str(a)).replace("__B__", str(b)).replace("__E__", "0.05"))
    g = results(given)["specs"][0]["gates"][0]
    assert g["status"] == "PASS", g["reason"]
    tests = g["details"]["tests"]
    assert tests["paired-t"]["significant"] and not tests["two-sigma"]["significant"]


def test_min_effect_fails_a_significant_but_small_gain(given: pytest.Pytester) -> None:
    a = [0.51, 0.71, 0.91, 0.61, 0.81]
    b = [x - 0.01 for x in a]
    run_spec(given, SIG.replace("__A__", str(a)).replace("__B__", str(b)).replace("__E__", "0.05"))
    g = results(given)["specs"][0]["gates"][0]
    assert g["status"] == "FAIL" and "significant-improvement size" in g["reason"]


def test_paired_p_values() -> None:
    d = np.array([0.1, 0.12, 0.09, 0.11])
    assert paired_p(d, ">", "paired-t") < 0.01
    assert paired_p(d, "<", "paired-t") > 0.9
    assert paired_p(d, ">", "paired-bootstrap") < 0.01
    assert paired_p(np.array([0.1, -0.1, 0.05, -0.05]), ">", "paired-bootstrap") > 0.2


NOT_BELOW = """\
goni: 1
id: nb
measurements:
  m: {kind: given, samples: {a: __A__, b: __B__}}
gates:
  - id: red-line
    kind: significance
    a: m.a
    b: m.b
    expect: a >= b
    test: two-sigma
    also: [paired-t]
    severity: red-line
"""


@pytest.mark.parametrize("a,b,status", [
    ([0.160, 0.163, 0.158], [0.163, 0.178, 0.160], "PASS"),   # the H200 run: -0.0067, two sigma 0.020: noise
    ([0.10, 0.11, 0.12], [0.30, 0.31, 0.32], "FAIL"),        # below by far more than two sigma: the red line fires
    ([0.30, 0.31, 0.32], [0.10, 0.11, 0.12], "PASS"),
])
def test_not_below_fires_only_on_a_difference_the_seeds_rule_counts(given: pytest.Pytester, a, b, status) -> None:
    """The seed's stop condition "your score < GPT-2 score" (line 400) counted by its own rule (lines
    363-366, |m1 - m2| > 2 sqrt(s1^2 + s2^2)): ``expect: a >= b`` fails only when a < b is significant."""
    run_spec(given, NOT_BELOW.replace("__A__", str(a)).replace("__B__", str(b)))
    g = results(given)["specs"][0]["gates"][0]
    assert g["status"] == status, g["reason"]
    assert g["reason"].startswith("a is significantly below b" if status == "FAIL" else "a is not significantly")
    assert "two sigma" in g["reason"] or "2 sigma" in g["reason"]


def test_not_below_is_invalid_on_an_invalid_comparison(given: pytest.Pytester) -> None:
    text = NOT_BELOW.replace("__A__", "[0.1, 0.11, 0.12]").replace("__B__", "[0.3, 0.31, 0.32]").replace(
        "samples:", "invalid: {a: neither model beats chance}, samples:")
    run_spec(given, text)
    g = results(given)["specs"][0]["gates"][0]
    assert g["status"] == "INVALID" and "neither model beats chance" in g["reason"]


WORST_SEED = """\
goni: 1
id: ws
measurements:
  m: {kind: given, samples: {norm: [50.0, 60.0, 140.0]}}
gates:
  - id: s1-high
    value: m.norm
    stat: max
    expect: "< 100"
  - id: should-scale
    kind: decision
    values:
      state_norm: __NORM__
    rules:
      - {when: {state_norm: ">= 100"}, decide: no, reason: State check S1 fails}
      - {decide: yes, reason: fine}
    expect: yes
"""


def test_a_decision_value_reads_its_own_statistic_as_the_threshold_gate_does(given: pytest.Pytester) -> None:
    """should_scale's S1 rule and the S1 gate read the same worst seed (max), not the median."""
    run_spec(given, WORST_SEED.replace("__NORM__", "{value: m.norm, stat: max}"))
    gates = {g["gate"]: g for g in results(given)["specs"][0]["gates"]}
    assert gates["s1-high"]["value"] == 140.0 and gates["s1-high"]["status"] == "FAIL"
    assert gates["should-scale"]["status"] == "FAIL" and "state_norm = 140" in gates["should-scale"]["reason"]
    run_spec(given, WORST_SEED.replace("__NORM__", "m.norm"))  # the gate's default statistic: the median
    assert "state_norm = 60" in results(given)["specs"][0]["gates"][1]["reason"]


def test_a_decision_value_with_unknown_keys_is_a_spec_error(given: pytest.Pytester) -> None:
    res = run_spec(given, WORST_SEED.replace("__NORM__", "{value: m.norm, statistic: max}"))
    assert "value 'state_norm': give an expression, or {value: EXPR, stat: STATISTIC}" in res.stdout.str()
