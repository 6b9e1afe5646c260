"""The gate statuses, one vocabulary for judging, the terminal table, results.json and baselines.

PASS: the value meets the expectation. FAIL: the threshold is breached. INVALID: no verdict
possible (too few samples, an interval straddling the threshold). ERROR: a measurement behind
the gate failed. SKIP: the gate cannot run here (no CUDA, another profile).
"""

from __future__ import annotations

PASS, FAIL, INVALID, ERROR, SKIP = "PASS", "FAIL", "INVALID", "ERROR", "SKIP"

#: Every status, in the order reports count them.
STATUSES = (PASS, FAIL, INVALID, ERROR, SKIP)

#: Statuses that come with a measured value (a verdict was reached on numbers).
JUDGED = (PASS, FAIL, INVALID)

#: Statuses a report shows with a failure panel.
NOT_PASSED = (FAIL, INVALID, ERROR)
