"""measurements."""

from . import op_bench, roofline  # noqa: F401,E402
