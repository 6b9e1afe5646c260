"""The ``value:`` language of gates: arithmetic over metric paths, parsed by hand, never eval'd.

Grammar (precedence low to high; ``**`` is right-associative and binds tighter than unary minus,
as in Python)::

    expr    := term (('+' | '-') term)*
    term    := unary (('*' | '/') unary)*
    unary   := ('-' | '+') unary | power
    power   := primary ('**' unary)?
    primary := NUMBER | PATH | NAME '(' expr (',' expr)* ')' | '(' expr ')'
    PATH    := IDENT ('.' (IDENT | DIGITS))*        e.g. prefill.gla.8192.latency

Every node keeps its span in the source text, so errors point at a column and evaluation errors
quote the sub-expression that failed ("division by zero in 'a / b'").
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from pytest_goni.units import Dim, UnitError

FUNCTIONS = ("abs", "log", "max", "min", "sqrt")
_ARITY = {"abs": (1, 1), "log": (1, 1), "sqrt": (1, 1), "min": (1, None), "max": (1, None)}


class ExprError(ValueError):
    """A syntax error in an expression; ``col`` is the 0-based column in its text."""

    def __init__(self, message: str, col: int) -> None:
        super().__init__(message if " at col " in message else f"{message} at col {col}")
        self.message = message  # without the column; str(error) has it
        self.col = col


class EvalError(ArithmeticError):
    """An expression has no finite value: division by zero, log of <= 0, NaN or inf."""


# --------------------------------------------------------------------------------------------
# Tokens

@dataclass(frozen=True)
class _Tok:
    kind: str   # "num" | "path" | "op" | "end"
    text: str
    col: int


_OPS1 = "+-*/(),"
_HINTS = {
    "^": "use '**' for powers",
    "<": "comparisons go in 'expect:', not in 'value:'",
    ">": "comparisons go in 'expect:', not in 'value:'",
    "=": "comparisons go in 'expect:', not in 'value:'",
    "%": "percentages go in 'expect:' ('within 5% of ...')",
    "[": "metric paths use dots: 'prefill.gla.8192.latency'",
}


def _is_digit(c: str) -> bool:
    return "0" <= c <= "9"  # not str.isdigit: '²' and other Unicode digits are no numbers here


def _is_ident_start(c: str) -> bool:
    return c.isascii() and (c.isalpha() or c == "_")


def _is_ident_char(c: str) -> bool:
    return c.isascii() and (c.isalnum() or c == "_")


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif _is_digit(c) or (c == "." and i + 1 < n and _is_digit(text[i + 1])):
            j = i
            while j < n and _is_digit(text[j]):
                j += 1
            if j < n and text[j] == ".":
                j += 1
                while j < n and _is_digit(text[j]):
                    j += 1
            if j < n and text[j] in "eE":
                k = j + 1
                if k < n and text[k] in "+-":
                    k += 1
                if k < n and _is_digit(text[k]):
                    while k < n and _is_digit(text[k]):
                        k += 1
                    j = k
            if j < n and _is_ident_start(text[j]):
                raise ExprError(f"unexpected '{text[j]}' after the number {text[i:j]}; units and "
                                "multipliers belong in 'expect:' ('< 5K tok/s')", j)
            toks.append(_Tok("num", text[i:j], i))
            i = j
        elif _is_ident_start(c):
            j = i
            while j < n and _is_ident_char(text[j]):
                j += 1
            while j < n and text[j] == ".":
                k = j + 1
                if k < n and _is_ident_start(text[k]):
                    while k < n and _is_ident_char(text[k]):
                        k += 1
                elif k < n and _is_digit(text[k]):
                    while k < n and _is_digit(text[k]):
                        k += 1
                    if k < n and _is_ident_start(text[k]):
                        raise ExprError("a path segment is a name or all digits, not "
                                        f"'{_segment_at(text, j + 1)}'", j + 1)
                else:
                    raise ExprError(f"expected a name or digits after '.' in '{text[i:k]}'", k)
                j = k
            toks.append(_Tok("path", text[i:j], i))
            i = j
        elif text.startswith("**", i):
            toks.append(_Tok("op", "**", i))
            i += 2
        elif c in _OPS1:
            toks.append(_Tok("op", c, i))
            i += 1
        else:
            hint = _HINTS.get(c)
            raise ExprError(f"unexpected character '{c}'" + (f" ({hint})" if hint else ""), i)
    toks.append(_Tok("end", "", n))
    return toks


def _segment_at(text: str, i: int) -> str:
    j = i
    while j < len(text) and _is_ident_char(text[j]):
        j += 1
    return text[i:j]


# --------------------------------------------------------------------------------------------
# Nodes

@dataclass(frozen=True)
class Node:
    start: int
    end: int


@dataclass(frozen=True)
class Num(Node):
    value: float
    literal: str


@dataclass(frozen=True)
class Path(Node):
    name: str


@dataclass(frozen=True)
class Unary(Node):
    op: str
    operand: Node


@dataclass(frozen=True)
class Binary(Node):
    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Call(Node):
    func: str
    args: tuple[Node, ...]


#: Nesting limit (parentheses, unary signs, powers): deeper input is an error, not a RecursionError.
MAX_NESTING = 50


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0
        self.depth = 0

    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def advance(self) -> _Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def at_op(self, *ops: str) -> bool:
        return self.tok.kind == "op" and self.tok.text in ops

    def unexpected(self, expected: str) -> ExprError:
        t = self.tok
        if t.kind == "end":
            return ExprError(f"expression ends too soon (expected {expected})", t.col)
        return ExprError(f"unexpected '{t.text}' (expected {expected})", t.col)

    def parse(self) -> Node:
        if self.tok.kind == "end":
            raise ExprError("empty expression (write a metric path such as 'speed.gla.tok_s')", 0)
        node = self.expr()
        if self.tok.kind != "end":
            t = self.tok
            if t.text == ")":
                raise ExprError("unexpected ')' (no '(' to close)", t.col)
            raise ExprError(f"unexpected '{t.text}' (expected an operator: + - * / **)", t.col)
        return node

    def expr(self) -> Node:
        node = self.term()
        while self.at_op("+", "-"):
            op = self.advance().text
            right = self.term()
            node = Binary(node.start, right.end, op, node, right)
        return node

    def term(self) -> Node:
        node = self.unary()
        while self.at_op("*", "/"):
            op = self.advance().text
            right = self.unary()
            node = Binary(node.start, right.end, op, node, right)
        return node

    def unary(self) -> Node:
        # Every recursion of the grammar passes through here, so this bounds the parse depth.
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise ExprError(f"expression nested more than {MAX_NESTING} levels deep", self.tok.col)
        try:
            if self.at_op("-", "+"):
                t = self.advance()
                operand = self.unary()
                return Unary(t.col, operand.end, t.text, operand)
            return self.power()
        finally:
            self.depth -= 1

    def power(self) -> Node:
        base = self.primary()
        if self.at_op("**"):
            self.advance()
            exponent = self.unary()
            return Binary(base.start, exponent.end, "**", base, exponent)
        return base

    def primary(self) -> Node:
        t = self.tok
        if t.kind == "num":
            self.advance()
            value = float(t.text)
            if not math.isfinite(value):
                raise ExprError(f"number {t.text} is out of range (a double holds up to ~1.8e308)", t.col)
            return Num(t.col, t.col + len(t.text), value, t.text)
        if t.kind == "path":
            self.advance()
            if self.at_op("("):
                return self.call(t)
            return Path(t.col, t.col + len(t.text), t.text)
        if self.at_op("("):
            self.advance()
            inner = self.expr()
            if not self.at_op(")"):
                if self.tok.kind == "end":
                    raise ExprError("unclosed '(' (no matching ')')", t.col)
                raise self.unexpected("')' or an operator")
            close = self.advance()
            return inner if isinstance(inner, (Num, Path)) else _respan(inner, t.col, close.col + 1)
        raise self.unexpected("a number, a metric path or '('")

    def call(self, name: _Tok) -> Node:
        if "." in name.text or name.text not in FUNCTIONS:
            raise ExprError(f"unknown function '{name.text}' (known: {', '.join(FUNCTIONS)})", name.col)
        open_ = self.advance()
        args: list[Node] = []
        if self.at_op(")"):
            raise ExprError(f"{name.text}() needs an argument", self.tok.col)
        while True:
            args.append(self.expr())
            if self.at_op(","):
                self.advance()
                continue
            if self.at_op(")"):
                close = self.advance()
                break
            if self.tok.kind == "end":
                raise ExprError("unclosed '(' (no matching ')')", open_.col)
            raise self.unexpected("',' or ')'")
        lo, hi = _ARITY[name.text]
        if len(args) < lo or (hi is not None and len(args) > hi):
            raise ExprError(f"{name.text}() takes exactly {lo} argument, got {len(args)}", name.col)
        return Call(name.col, close.col + 1, name.text, tuple(args))


def _respan(node: Node, start: int, end: int) -> Node:
    """The same node with the span of its parentheses, so quoted snippets keep them."""
    fields = {k: getattr(node, k) for k in node.__dataclass_fields__}
    fields.update(start=start, end=end)
    return type(node)(**fields)


# --------------------------------------------------------------------------------------------
# Expressions

class Expr:
    """A parsed ``value:`` expression."""

    def __init__(self, text: str, root: Node) -> None:
        self.text = text
        self.root = root

    def __repr__(self) -> str:
        return f"Expr({self.text!r})"

    def snippet(self, node: Node) -> str:
        return self.text[node.start:node.end]

    # ---- structure --------------------------------------------------------------------------
    def _walk(self, node: Node | None = None):
        node = self.root if node is None else node
        yield node
        if isinstance(node, Unary):
            yield from self._walk(node.operand)
        elif isinstance(node, Binary):
            yield from self._walk(node.left)
            yield from self._walk(node.right)
        elif isinstance(node, Call):
            for a in node.args:
                yield from self._walk(a)

    def paths(self) -> set[str]:
        """The metric paths the expression reads."""
        return {n.name for n in self._walk() if isinstance(n, Path)}

    def path_cols(self) -> dict[str, int]:
        """Each metric path's first column in the text (for carets on unknown paths)."""
        out: dict[str, int] = {}
        for n in self._walk():
            if isinstance(n, Path) and n.name not in out:
                out[n.name] = n.start
        return out

    @property
    def single_path(self) -> str | None:
        """The path when the whole expression is one metric path, else None."""
        return self.root.name if isinstance(self.root, Path) else None

    # ---- evaluation -------------------------------------------------------------------------
    def evaluate(self, lookup: Callable[[str], float]) -> float:
        """The value, each path read through ``lookup``. Raises :class:`EvalError` when any part
        has no finite value, quoting the part."""
        return self._eval(self.root, lookup)

    def _eval(self, node: Node, lookup: Callable[[str], float]) -> float:
        if isinstance(node, Num):
            return node.value
        if isinstance(node, Path):
            v = float(lookup(node.name))
            if not math.isfinite(v):
                raise EvalError(f"'{node.name}' is {v}")
            return v
        snip = self.snippet(node)
        if isinstance(node, Unary):
            v = self._eval(node.operand, lookup)
            return -v if node.op == "-" else v
        if isinstance(node, Call):
            args = [self._eval(a, lookup) for a in node.args]
            if node.func == "min":
                return min(args)
            if node.func == "max":
                return max(args)
            if node.func == "abs":
                return abs(args[0])
            if node.func == "log":
                if args[0] <= 0:
                    raise EvalError(f"log of {args[0]:.6g} (not positive) in '{snip}'")
                return math.log(args[0])
            if args[0] < 0:
                raise EvalError(f"sqrt of {args[0]:.6g} (negative) in '{snip}'")
            return math.sqrt(args[0])
        assert isinstance(node, Binary)
        a = self._eval(node.left, lookup)
        b = self._eval(node.right, lookup)
        try:
            if node.op == "+":
                r = a + b
            elif node.op == "-":
                r = a - b
            elif node.op == "*":
                r = a * b
            elif node.op == "/":
                r = a / b
            else:
                if a < 0 and not float(b).is_integer():
                    raise EvalError(f"negative base {a:.6g} to the fractional power {b:.6g} in '{snip}'")
                r = a ** b
        except ZeroDivisionError:
            raise EvalError(f"division by zero in '{snip}'") from None
        except OverflowError:
            raise EvalError(f"overflow in '{snip}'") from None
        if not math.isfinite(r):
            raise EvalError(f"overflow in '{snip}'")
        return r

    def evaluate_array(self, lookup: Callable[[str], np.ndarray]) -> np.ndarray:
        """Element-wise value over arrays (bootstrap replicates, paired samples). Undefined
        elements (x/0, log of <= 0, NaN inputs) come out NaN or inf instead of raising."""
        with np.errstate(all="ignore"):
            return np.asarray(self._eval_array(self.root, lookup), dtype=np.float64)

    def _eval_array(self, node: Node, lookup: Callable[[str], np.ndarray]) -> np.ndarray:
        if isinstance(node, Num):
            return np.float64(node.value)
        if isinstance(node, Path):
            return np.asarray(lookup(node.name), dtype=np.float64)
        if isinstance(node, Unary):
            v = self._eval_array(node.operand, lookup)
            return -v if node.op == "-" else v
        if isinstance(node, Call):
            args = [self._eval_array(a, lookup) for a in node.args]
            if node.func == "min":
                return np.minimum.reduce(np.broadcast_arrays(*args)) if len(args) > 1 else args[0]
            if node.func == "max":
                return np.maximum.reduce(np.broadcast_arrays(*args)) if len(args) > 1 else args[0]
            if node.func == "abs":
                return np.abs(args[0])
            if node.func == "log":
                x = args[0]
                return np.where(x > 0, np.log(np.where(x > 0, x, 1.0)), np.nan)
            return np.sqrt(args[0])
        assert isinstance(node, Binary)
        a = self._eval_array(node.left, lookup)
        b = self._eval_array(node.right, lookup)
        if node.op == "+":
            return a + b
        if node.op == "-":
            return a - b
        if node.op == "*":
            return a * b
        if node.op == "/":
            return np.divide(a, b)
        return np.power(a, b)

    # ---- dimensions -------------------------------------------------------------------------
    def dimension(self, unit_of: Callable[[str], Dim]) -> Dim:
        """The dimension of the value, each path's through ``unit_of``. Raises
        :class:`~pytest_goni.units.UnitError` (with ``col``) when quantities of different
        dimensions are added, compared by min/max, or given to log."""
        return self._dim(self.root, unit_of)

    def _dim(self, node: Node, unit_of: Callable[[str], Dim]) -> Dim:
        if isinstance(node, Num):
            return Dim.NONE
        if isinstance(node, Path):
            return unit_of(node.name)
        snip = self.snippet(node)
        if isinstance(node, Unary):
            return self._dim(node.operand, unit_of)
        if isinstance(node, Call):
            dims = [self._dim(a, unit_of) for a in node.args]
            if node.func in ("min", "max"):
                for a, d in zip(node.args[1:], dims[1:]):
                    if d != dims[0]:
                        raise UnitError(f"'{snip}' mixes {dims[0].phrase()} and {d.phrase()}",
                                        col=a.start)
                return dims[0]
            if node.func == "abs":
                return dims[0]
            if node.func == "log":
                if not dims[0].is_none:
                    raise UnitError(f"log of {dims[0].phrase()} in '{snip}': take the log "
                                    "of a ratio instead, e.g. log(a / b)", col=node.start)
                return Dim.NONE
            return dims[0] ** Fraction(1, 2)
        assert isinstance(node, Binary)
        dl = self._dim(node.left, unit_of)
        dr = self._dim(node.right, unit_of)
        if node.op in ("+", "-"):
            if dl != dr:
                verb = "adds" if node.op == "+" else "subtracts"
                raise UnitError(f"'{snip}' {verb} {dl.phrase()} and {dr.phrase()}",
                                col=node.right.start)
            return dl
        if node.op == "*":
            return dl * dr
        if node.op == "/":
            return dl / dr
        if not dr.is_none:
            raise UnitError(f"the exponent in '{snip}' must be a plain number, not {dr.phrase()}",
                            col=node.right.start)
        if dl.is_none:
            return Dim.NONE
        if any(isinstance(n, Path) for n in self._walk(node.right)):
            raise UnitError(f"'{snip}' raises {dl.phrase()} to a measured power; the exponent "
                            "of a quantity with a unit must be a constant", col=node.right.start)
        exponent = self._eval(node.right, lambda p: math.nan)
        return dl ** Fraction(exponent).limit_denominator(1000)


def parse(text: str) -> Expr:
    """Parse a ``value:`` expression; raises :class:`ExprError` with the column of the fault."""
    if not isinstance(text, str):
        raise ExprError(f"an expression must be text, got {text!r} ({type(text).__name__})", 0)
    return Expr(text, _Parser(text).parse())
