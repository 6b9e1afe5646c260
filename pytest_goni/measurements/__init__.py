"""measurements."""

from . import op_bench, roofline, tokenizer  # noqa: F401,E402
