"""Exception messages for the places where a failure is recorded, not raised (benchmark rows, fallbacks).

The first line alone is not always the message: Triton's CompilationError reads "at L:C:", then the
kernel's source up to the failing line, a caret, and only then the error ("Both operands must be
same dtype. Got bf16 and fp32"). A note keeps the whole message when it is short, else its first
line and as many of its last lines as fit; `one_line` keeps the first and the last line.
"""

from __future__ import annotations


def exception_note(exc: BaseException, limit: int = 1500) -> str:
    """"Type: message", whole when it fits in `limit` characters, else its first line, "..." and the
    last lines that fit (the end of a long message is what says what failed)."""
    name = type(exc).__name__
    msg = str(exc).strip()
    if not msg:
        return name
    text = f"{name}: {msg}"
    if len(text) <= limit:
        return text
    lines = msg.splitlines()
    first = f"{name}: {lines[0]}"[: limit // 3]
    room = limit - len(first) - len("\n...\n")
    tail: list[str] = []
    for line in reversed(lines[1:]):
        if len(line) + 1 > room:
            break
        tail.insert(0, line)
        room -= len(line) + 1
    if not tail:  # one very long last line: its end
        tail = [lines[-1][-room:]] if len(lines) > 1 and room > 0 else []
    return "\n".join([first, "...", *tail])


def one_line(note: str, limit: int = 300) -> str:
    """A note on one line: its first line, and " ... " and its last line when it has more."""
    lines = [line.strip() for line in note.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    text = lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1]}"
    return text[:limit]
