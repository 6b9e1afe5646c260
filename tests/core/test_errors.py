"""Failure notes keep what an exception says: a Triton compile error's source line and error come last."""

from pytest_goni.errors import exception_note, one_line

SOURCE = [f"        x{i} = tl.load(p{i} + offs, mask=m, other=0.0)" for i in range(40)]
COMPILE_MSG = "\n".join(["at 50:13:", *SOURCE, "        du = tl.dot(tl.trans(r_b), g) + tl.dot(bd, dsd)",
                         "             ^", "Both operands must be same dtype. Got bf16 and fp32"])


class CompilationError(Exception):
    """Named as Triton's; its message has the same layout (position, source, caret, error)."""


def test_a_long_message_keeps_its_first_line_and_its_end():
    note = exception_note(CompilationError(COMPILE_MSG), limit=400)
    lines = note.splitlines()
    assert len(note) <= 400
    assert lines[0] == "CompilationError: at 50:13:" and lines[1] == "..."
    assert lines[-3:] == COMPILE_MSG.splitlines()[-3:]  # the failing line, the caret, the error
    assert one_line(note) == "CompilationError: at 50:13: ... Both operands must be same dtype. Got bf16 and fp32"


def test_a_short_message_is_kept_whole():
    assert exception_note(ValueError("bad\nsecond")) == "ValueError: bad\nsecond"
    short = "\n".join(["at 50:13:", *SOURCE[:8], *COMPILE_MSG.splitlines()[-3:]])
    assert exception_note(CompilationError(short)) == f"CompilationError: {short}"
    assert exception_note(RuntimeError()) == "RuntimeError"
    assert one_line("ValueError: bad") == "ValueError: bad"


def test_one_very_long_last_line_keeps_its_end():
    msg = "at 1:2:\n" + "y" * 5000 + "the end"
    note = exception_note(RuntimeError(msg), limit=300)
    assert len(note) <= 300 and note.endswith("the end") and note.startswith("RuntimeError: at 1:2:")
