"""Gate kind ``fit``: the scaling law L = a N^-b + c fitted over size rungs, gated on its parameters
or predictions (v5-gpt2-gates.md lines 489-502: "Expected scaling law: L = a * N^(-b) + c", "steeper
b: more parameter-efficient", "Curves should be parallel"; lines 881-889: project to 125M).

The fit is Chinchilla's approach 3 in one variable (../shared/REFERENCES.md, "Scaling-law fit"):
minimise the Huber loss (delta 1e-3) between log L and LSE(alpha - b log N, e), a = exp(alpha),
c = exp(e), with L-BFGS from a grid of starts (alpha 0..25 by 5, b 0..2 by 0.5, e -1..1 by 0.5; the
eight grid points of lowest loss are refined), every seed's loss an observation. Intervals are a
bootstrap over seeds (each rung's losses resampled, refitted from the point fit).

```yaml
kind: fit
series:
  cand: {x: [p.r3_5M.candidate.params_non_embedding, p.r8M.candidate.params_non_embedding],
         y: [cmp.r3_5M.candidate.val_loss, cmp.r8M.candidate.val_loss]}
  gpt2: {x: [...], y: [...]}
fix: {c: 0}                # optional: fewer rungs than free parameters cannot be fitted
predict: {at_125M: 85e6}   # named N (a number or a metric path) where each law is read (series.at_125M)
value: cand.b - gpt2.b     # series.a / .b / .c / .<prediction>, and metric paths
expect: ">= -0.1"
```
With fewer distinct N than free parameters the law is not determined: the gate is INVALID.
"""

from __future__ import annotations

import itertools
import math
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from pytest_goni import stats
from pytest_goni.gate_kinds.common import fmt
from pytest_goni.judge import FAIL, INVALID, PASS, CompiledGate, GateSpecError, Verdict, _expect, _expression
from pytest_goni.stats import Metric

HUBER_DELTA = 1e-3
GRID = {"alpha": np.arange(0, 26, 5.0), "b": np.arange(0, 2.01, 0.5), "e": np.arange(-1, 1.01, 0.5)}
PARAMS = ("a", "b", "c")


def _huber(r: np.ndarray, delta: float = HUBER_DELTA) -> np.ndarray:
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


def fit_law(n: np.ndarray, loss: np.ndarray, fix_c: float | None = None,
            start: np.ndarray | None = None, n_starts: int = 8) -> dict[str, float]:
    """(a, b, c) of L = a N^-b + c by approach 3; ``fix_c`` holds c (0: a pure power law).

    The Huber objective is evaluated on the whole grid first and L-BFGS (analytic gradient) runs
    from its ``n_starts`` best points; ``start`` skips the grid (bootstrap refits)."""
    from scipy.optimize import minimize

    ln_n, ln_l = np.log(n), np.log(loss)
    fixed_e = None if fix_c is None else (-np.inf if fix_c == 0 else math.log(fix_c))

    def parts(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        u = theta[0] - theta[1] * ln_n
        e = theta[2] if fixed_e is None else fixed_e
        pred = np.logaddexp(u, e)
        return ln_l - pred, np.exp(u - pred), pred

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        # In units of delta^2: a Huber sum of ~1e-4 stopped L-BFGS-B after a few steps, its relative
        # reduction test dividing by max(|f|, 1) (a GPT-2 fit 0.15 off its 3.5M point, 2026-12-01).
        r, sig, _ = parts(theta)
        g = -np.clip(r, -HUBER_DELTA, HUBER_DELTA) / HUBER_DELTA**2   # d huber / d pred
        grad = [float((g * sig).sum()), float((g * -ln_n * sig).sum())]
        if fixed_e is None:
            grad.append(float((g * (1 - sig)).sum()))
        return float(_huber(r).sum()) / HUBER_DELTA**2, np.array(grad)

    if start is not None:
        starts = [np.asarray(start, float)]
    else:
        grid = [GRID["alpha"], GRID["b"]] + ([GRID["e"]] if fixed_e is None else [])
        points = [np.array(s) for s in itertools.product(*grid)]
        starts = sorted(points, key=lambda t: objective(t)[0])[:n_starts]
    best = None
    for s in starts:
        res = minimize(objective, s, jac=True, method="L-BFGS-B", options={"ftol": 1e-14, "gtol": 1e-9,
                                                                             "maxiter": 2000})
        if best is None or res.fun < best.fun:
            best = res
    theta = best.x
    c = math.exp(theta[2]) if fixed_e is None else float(fix_c)
    return {"a": math.exp(theta[0]), "b": float(theta[1]), "c": c, "loss": float(best.fun) * HUBER_DELTA**2,
            "theta": theta.tolist()}


def law(fit: Mapping[str, float], n: float) -> float:
    return fit["a"] * n ** (-fit["b"]) + fit["c"]


class FitGate(CompiledGate):
    kind = "fit"

    def __init__(self, gate: Mapping[str, Any], metric_units: Mapping[str, str]) -> None:
        super().__init__(gate)
        series = gate.get("series")
        if not isinstance(series, Mapping) or not series:
            raise GateSpecError("series", "needs named series, each {x: [metric paths], y: [metric paths]}")
        self.series: dict[str, tuple[list[str], list[str]]] = {}
        for name, s in series.items():
            if not isinstance(s, Mapping) or not isinstance(s.get("x"), list) or not isinstance(s.get("y"), list) \
                    or len(s["x"]) != len(s["y"]) or len(s["x"]) < 2:
                raise GateSpecError("series", f"series {name!r} needs lists x and y of equal length >= 2")
            for p in [*s["x"], *s["y"]]:
                if p not in metric_units:
                    raise GateSpecError("series", f"series {name!r}: unknown metric {p!r}")
            self.series[str(name)] = ([str(p) for p in s["x"]], [str(p) for p in s["y"]])
        fix = gate.get("fix") or {}
        if set(fix) - {"c"}:
            raise GateSpecError("fix", "only 'c' can be fixed (c: 0 fits a pure power law)")
        self.fix_c = None if "c" not in fix else float(fix["c"])
        self.predict: dict[str, float | str] = {}
        for k, v in (gate.get("predict") or {}).items():
            if isinstance(v, str) and v in metric_units:
                self.predict[str(k)] = v          # a metric path: N read from the measurement
            else:
                try:
                    self.predict[str(k)] = float(v)
                except (TypeError, ValueError):
                    raise GateSpecError("predict", f"{k!r}: a number of parameters or a metric path, "
                                                   f"got {v!r}") from None
        self.expr = _expression(gate, "value")
        names = set(PARAMS) | set(self.predict)
        for p in self.expr.paths():
            head, _, rest = p.partition(".")
            if head in self.series:
                if rest not in names:
                    raise GateSpecError("value", f"{p!r}: a series gives {', '.join(sorted(names))}")
            elif p not in metric_units:
                raise GateSpecError("value", f"{p!r} is neither a series quantity nor a metric")
        self.expect = _expect(gate)
        self.n_boot = int(gate.get("n_boot", 200))
        self.metric_paths = {p for p in self.expr.paths() if p.split(".", 1)[0] not in self.series}
        self.paths = ({p for x, y in self.series.values() for p in x + y} | self.metric_paths
                      | {v for v in self.predict.values() if isinstance(v, str)})
        self.scales = {p: 1.0 for p in self.paths}

    def _fit_all(self, data: dict[str, tuple[np.ndarray, list[np.ndarray]]], starts: dict | None = None
                 ) -> dict[str, dict[str, float]]:
        out = {}
        for name, (xs, ys) in data.items():
            n = np.concatenate([np.full(len(y), x) for x, y in zip(xs, ys)])
            loss = np.concatenate(ys)
            out[name] = fit_law(n, loss, self.fix_c, None if starts is None else np.array(starts[name]["theta"]))
        return out

    def _value(self, fits: dict[str, dict[str, float]], point: dict[str, float]) -> float:
        def lookup(p: str) -> float:
            head, _, rest = p.partition(".")
            if head in fits:
                return law(fits[head], self.at[rest]) if rest in self.at else fits[head][rest]
            return point[p]
        return self.expr.evaluate(lookup)

    def judge(self, metrics: Mapping[str, Metric], baseline: float | None = None) -> Verdict:
        expect = self.expect.describe()
        evidence: dict[str, Any] = {}
        for p in self.paths:
            m = metrics.get(p)
            if m is None:
                return Verdict(FAIL, None, "n/a", expect, None, None, f"metric '{p}' was not produced", evidence)
            if m.meta.get("invalid"):
                return Verdict(INVALID, None, "n/a", expect, None, None, f"{p}: {m.meta['invalid']}", evidence)
            evidence[p] = {"n": len(m.samples), "mean": stats.summarize(m.samples, "mean"), "note": m.note}
        data = {}
        free = 2 if self.fix_c is not None else 3
        for name, (xs, ys) in self.series.items():
            x = np.array([stats.summarize(metrics[p].samples, "median") for p in xs])
            y = [np.asarray(metrics[p].samples, float) for p in ys]
            if len(set(x.tolist())) < free:
                return Verdict(INVALID, None, "n/a", expect, None, None,
                               f"series {name!r} has {len(set(x.tolist()))} distinct sizes for {free} free "
                               "parameters: the law is not determined (add rungs or fix c)", evidence)
            if not all(np.isfinite(v).all() and (v > 0).all() for v in y) or not (x > 0).all():
                return Verdict(FAIL, None, "n/a", expect, None, None,
                               f"series {name!r} has non-finite or non-positive values", evidence)
            data[name] = (x, y)
        point = {p: stats.summarize(metrics[p].samples, self.stat) for p in self.metric_paths}
        self.at = {k: (stats.summarize(metrics[v].samples, "median") if isinstance(v, str) else v)
                   for k, v in self.predict.items()}
        fits = self._fit_all(data)
        details: dict[str, Any] = {"fits": {k: {q: v[q] for q in ("a", "b", "c", "loss")} for k, v in fits.items()},
                                   "predictions": {k: {q: law(f, n) for q, n in self.at.items()}
                                                   for k, f in fits.items()}}
        try:
            value = self._value(fits, point)
        except ArithmeticError as e:
            return Verdict(FAIL, None, "n/a", expect, None, None, f"value: {e}", evidence, details)
        laws = "; ".join(f"{k}: L = {fmt(f['a'])} N^-{fmt(f['b'])} + {fmt(f['c'])}" for k, f in fits.items())
        interval = None
        if self.confidence is not None:
            reps = self._bootstrap(data, fits, point)
            if reps.size < self.n_boot // 2:
                return Verdict(INVALID, value, fmt(value), expect, None, None,
                               f"only {reps.size} of {self.n_boot} bootstrap refits gave a value; {laws}",
                               evidence, details)
            q = (1 - self.confidence) / 2
            interval = (float(np.quantile(reps, q)), float(np.quantile(reps, 1 - q)))
            details["interval"] = interval
            where = self.expect.check_interval(*interval)
            span = f"{self.confidence:.0%} bootstrap interval [{fmt(interval[0])}, {fmt(interval[1])}]"
            status = {"pass": PASS, "fail": FAIL}.get(where, INVALID)
            return Verdict(status, value, f"{fmt(value)} [{fmt(interval[0])}, {fmt(interval[1])}]", expect,
                           self.expect.margin(value), interval, f"{self.expr.text} = {fmt(value)}, {span} "
                           f"({where}); {laws}", evidence, details)
        ok = self.expect.check(value)
        return Verdict(PASS if ok else FAIL, value, fmt(value), expect, self.expect.margin(value), None,
                       f"{self.expr.text} = {fmt(value)}, expected {expect}; {laws}", evidence, details)

    def _bootstrap(self, data: dict, fits: dict, point: dict[str, float]) -> np.ndarray:
        rng = np.random.default_rng(zlib.crc32(self.id.encode()))
        reps = []
        for _ in range(self.n_boot):
            sample = {name: (x, [y[rng.integers(0, len(y), len(y))] for y in ys]) for name, (x, ys) in data.items()}
            try:
                v = self._value(self._fit_all(sample, fits), point)
            except ArithmeticError:
                continue
            if math.isfinite(v):
                reps.append(v)
        return np.asarray(reps)
