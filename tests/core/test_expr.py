"""The value: language: parsing with error columns, evaluation, dimensions."""

import math

import numpy as np
import pytest

from pytest_goni.expr import EvalError, ExprError, parse
from pytest_goni.units import BYTES, TIME, TOKENS, Dim, UnitError

VALUES = {"a": 6.0, "b": 3.0, "train.candidate.val_loss": 3.3, "train.gpt2.val_loss": 3.0,
          "prefill.gla.8192.latency": 0.25, "z.zero": 0.0, "n.neg": -4.0}


def ev(text: str) -> float:
    return parse(text).evaluate(VALUES.__getitem__)


@pytest.mark.parametrize("text, expected", [
    ("1", 1.0),
    ("1.5", 1.5),
    (".5", 0.5),
    ("2.", 2.0),
    ("1e-3", 1e-3),
    ("2E+2", 200.0),
    ("a + b", 9.0),
    ("a - b - 1", 2.0),          # left-associative
    ("a / b / 2", 1.0),
    ("a * b + 1", 19.0),
    ("1 + a * b", 19.0),         # * binds tighter than +
    ("(1 + a) * b", 21.0),
    ("2 ** 3 ** 2", 512.0),      # ** is right-associative
    ("-2 ** 2", -4.0),           # ** binds tighter than unary minus, as in Python
    ("2 ** -1", 0.5),
    ("--a", 6.0),
    ("+a", 6.0),
    ("-(a - b)", -3.0),
    ("min(a, b)", 3.0),
    ("max(a, b, 10)", 10.0),
    ("min(a)", 6.0),
    ("abs(n.neg)", 4.0),
    ("sqrt(a * 6)", 6.0),
    ("log(b)", math.log(3.0)),
    ("train.candidate.val_loss / train.gpt2.val_loss", 1.1),
    ("prefill.gla.8192.latency * 4", 1.0),
    ("  a+b  ", 9.0),
])
def test_evaluates(text, expected):
    assert ev(text) == pytest.approx(expected, rel=1e-12)


def test_paths_and_columns():
    e = parse("train.candidate.val_loss / max(train.gpt2.val_loss, prefill.gla.8192.latency) + 1")
    assert e.paths() == {"train.candidate.val_loss", "train.gpt2.val_loss", "prefill.gla.8192.latency"}
    cols = e.path_cols()
    assert cols["train.candidate.val_loss"] == 0
    assert cols["train.gpt2.val_loss"] == e.text.index("train.gpt2")
    assert cols["prefill.gla.8192.latency"] == e.text.index("prefill")
    assert e.text.startswith("train.")
    assert parse("x.y").single_path == "x.y"
    assert parse("(x.y)").single_path == "x.y"
    assert parse("x.y * 2").single_path is None
    assert parse("1 + 2").paths() == set()


def test_function_names_are_paths_without_call():
    # "max" alone or with dots is a metric path; only NAME( is a call.
    assert parse("max.value + min").paths() == {"max.value", "min"}


@pytest.mark.parametrize("text, col, fragment", [
    ("(a + b))", 7, "unexpected ')'"),
    ("a +", 3, "ends too soon"),
    ("a + * b", 4, "unexpected '*'"),
    ("(a + b", 0, "unclosed '('"),
    ("max(a, b", 3, "unclosed '('"),
    ("exp(a)", 0, "unknown function 'exp' (known: abs, log, max, min, sqrt)"),
    ("a.b(c)", 0, "unknown function 'a.b'"),
    ("1 + foo(2)", 4, "unknown function 'foo'"),
    ("a b", 2, "unexpected 'b' (expected an operator"),
    ("a ^ 2", 2, "use '**' for powers"),
    ("a < 2", 2, "comparisons go in 'expect:'"),
    ("a % 2", 2, "unexpected character '%'"),
    ("a..b", 2, "after '.'"),
    ("a.", 2, "after '.'"),
    ("prefill.gla.8k.latency", 12, "name or all digits"),
    ("5K", 1, "belong in 'expect:'"),
    ("2x * a", 1, "unexpected 'x'"),
    ("", 0, "empty expression"),
    ("   ", 0, "empty expression"),
    ("min()", 4, "needs an argument"),
    ("abs(a, b)", 0, "takes exactly 1 argument"),
    ("log(a,)", 6, "unexpected ')'"),
    ("max(a b)", 6, "expected ',' or ')'"),
    ("()", 1, "unexpected ')'"),
    ("a @ b", 2, "unexpected character '@'"),
])
def test_syntax_errors_have_columns(text, col, fragment):
    with pytest.raises(ExprError) as info:
        parse(text)
    err = info.value
    assert err.col == col, (text, err.col, str(err))
    assert fragment in str(err)
    assert str(err).endswith(f"at col {col}")
    assert f"at col {col}" not in err.message  # the bare message leaves the column to the caller


def test_brief_examples_verbatim():
    with pytest.raises(ExprError) as info:
        parse("(a + b))")
    assert str(info.value).startswith("unexpected ')'") and info.value.col == 7
    with pytest.raises(ExprError) as info:
        parse("exp(a)")
    assert info.value.message == "unknown function 'exp' (known: abs, log, max, min, sqrt)"


def test_non_text_is_an_error():
    with pytest.raises(ExprError):
        parse(3)  # type: ignore[arg-type]


def test_no_eval_backdoor():
    for hostile in ("__import__('os').system('true')", "lambda: 1", "a if b else 1", "[a]", "a; b"):
        with pytest.raises(ExprError):
            parse(hostile).evaluate(lambda p: 1.0)
    # Dunder-looking names are only metric path names handed to the lookup, never attributes.
    assert parse("a.__class__").evaluate({"a.__class__": 2.0}.__getitem__) == 2.0


@pytest.mark.parametrize("text, fragment", [
    ("a / z.zero", "division by zero in 'a / z.zero'"),
    ("a / (b - b)", "division by zero in 'a / (b - b)'"),
    ("log(z.zero)", "log of 0 (not positive) in 'log(z.zero)'"),
    ("log(n.neg)", "not positive"),
    ("sqrt(n.neg)", "sqrt of -4"),
    ("n.neg ** 0.5", "fractional power"),
    ("z.zero ** -1", "division by zero"),
    ("10 ** 400", "overflow"),
    ("1e308 * 10", "overflow"),
])
def test_evaluation_errors(text, fragment):
    with pytest.raises(EvalError) as info:
        ev(text)
    assert fragment in str(info.value)


def test_nan_and_inf_inputs_are_eval_errors():
    e = parse("x.y + 1")
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(EvalError, match="'x.y' is"):
            e.evaluate(lambda p, bad=bad: bad)


def test_eval_error_is_arithmetic_error():
    assert issubclass(EvalError, ArithmeticError)


def test_evaluate_array_matches_scalar_and_marks_undefined():
    rng = np.random.default_rng(0)
    arrays = {"a": rng.uniform(1, 2, 50), "b": rng.uniform(-1, 1, 50)}
    e = parse("max(a, b) / abs(b) + sqrt(a) * log(a) - 2 ** a")
    out = e.evaluate_array(arrays.__getitem__)
    for i in range(50):
        expected = e.evaluate(lambda p, i=i: arrays[p][i])
        assert out[i] == pytest.approx(expected, rel=1e-12)
    bad = parse("a / (b - b) + log(b)").evaluate_array(arrays.__getitem__)
    assert not np.isfinite(bad).any()
    const = parse("2 * 3").evaluate_array(arrays.__getitem__)
    assert float(const) == 6.0


def test_dimensions():
    units = {"t.a": TIME, "t.b": TIME, "m.b": BYTES, "tok.n": TOKENS, "r.x": Dim.NONE}
    dim = lambda text: parse(text).dimension(units.__getitem__)  # noqa: E731
    assert dim("t.a / t.b") == Dim.NONE
    assert dim("t.a - t.b") == TIME
    assert dim("tok.n / t.a") == TOKENS / TIME
    assert str(dim("tok.n / t.a")) == "tokens/time"
    assert dim("m.b / t.a") == BYTES / TIME
    assert dim("t.a * 1000") == TIME
    assert dim("max(t.a, t.b, 2 * t.a)") == TIME
    assert dim("abs(t.a - t.b)") == TIME
    assert dim("sqrt(t.a * t.b)") == TIME
    assert dim("t.a ** 2") == TIME ** 2
    assert dim("log(t.a / t.b)") == Dim.NONE
    assert dim("r.x ** r.x") == Dim.NONE
    assert dim("2 ** 10") == Dim.NONE
    assert str(dim("1 / t.a")) == "1/time"
    assert str(dim("sqrt(t.a)")) == "time^1/2"


@pytest.mark.parametrize("text, col, fragment", [
    ("t.a + m.b", 6, "adds a time and bytes"),
    ("t.a - 1", 6, "subtracts a time and a plain number"),
    ("min(t.a, m.b)", 9, "mixes a time and bytes"),
    ("log(t.a)", 0, "log of a time"),
    ("t.a ** r.x", 7, "constant"),
    ("r.x ** t.a", 7, "must be a plain number"),
])
def test_dimension_errors(text, col, fragment):
    units = {"t.a": TIME, "m.b": BYTES, "r.x": Dim.NONE}
    with pytest.raises(UnitError) as info:
        parse(text).dimension(units.__getitem__)
    assert fragment in str(info.value)
    assert info.value.col == col


def _random_expression(rng: np.random.Generator, depth: int) -> str:
    """Random text over + - * / ** unary minus, calls and parentheses (minimal spacing varies)."""
    if depth == 0 or rng.random() < 0.25:
        return str(rng.choice(["a", "b", "c.d", "2", "0.5", "3"]))
    form = rng.integers(0, 5)
    sp = " " if rng.random() < 0.5 else ""
    if form == 0:
        op = str(rng.choice(["+", "-", "*", "/"]))
        return f"{_random_expression(rng, depth - 1)}{sp}{op}{sp}{_random_expression(rng, depth - 1)}"
    if form == 1:
        return f"-{_random_expression(rng, depth - 1)}"
    if form == 2:
        return f"({_random_expression(rng, depth - 1)})"
    if form == 3:
        return f"{rng.choice(['a', 'b', '2'])}{sp}**{sp}{rng.choice(['2', '-1', '0.5', 'b'])}"
    fn = str(rng.choice(["min", "max", "abs"]))
    n = 1 if fn == "abs" else int(rng.integers(1, 4))
    return f"{fn}({', '.join(_random_expression(rng, depth - 1) for _ in range(n))})"


def test_precedence_matches_python_on_random_expressions():
    # Python's own parser is the oracle for precedence and associativity (test code only: the
    # strings are generated here from a closed alphabet, never read from a spec).
    rng = np.random.default_rng(2026)
    env = {"a": 1.7, "b": 2.3, "c.d": 0.9}
    names = {"a": 1.7, "b": 2.3, "c_d": 0.9, "abs": abs,
             "min": lambda *xs: min(xs), "max": lambda *xs: max(xs)}  # n-ary, one argument too
    checked = 0
    for _ in range(600):
        text = _random_expression(rng, 4)
        try:
            expected = eval(compile(text.replace("c.d", "c_d"), "<gen>", "eval"), {"__builtins__": {}}, names)
        except (ZeroDivisionError, OverflowError):
            continue
        if isinstance(expected, complex) or not math.isfinite(expected):
            continue
        got = parse(text).evaluate(env.__getitem__)
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-12), text
        checked += 1
    assert checked > 400
