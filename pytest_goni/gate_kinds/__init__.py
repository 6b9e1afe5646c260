"""Gate kinds beyond thresholds, written as data: ``decision`` (ordered rules), ``grade`` (a table
of practical thresholds and a graduation rule), ``fit`` (the scaling law L = a N^-b + c) and the
paired ``significance`` tests. Importing this registers them with the judge."""

from pytest_goni.judge import GATE_KINDS

from .decision import DecisionGate
from .fit import FitGate
from .grade import GradeGate
from .paired import PairedSignificanceGate

GATE_KINDS.update({"decision": DecisionGate, "grade": GradeGate, "fit": FitGate,
                   "significance": PairedSignificanceGate})
