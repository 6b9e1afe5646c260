"""The command-line options and ini keys of pytest-goni."""

from __future__ import annotations

import pytest

from .scheduling import DIST_CHOICES


def add_options(parser: pytest.Parser) -> None:
    """--goni-* options and the goni_specs ini key."""
    group = parser.getgroup("goni", "pytest-goni: acceptance gates from YAML specs")
    group.addoption("--goni-spec", action="append", default=[], metavar="PATH|GLOB", dest="goni_spec",
                    help="a spec to run as gates (repeatable; globs allowed)")
    group.addoption("--goni-profile", default="auto", metavar="auto|cpu|gpu|NAME", dest="goni_profile",
                    help="profile of values each spec defines (auto: gpu with CUDA, else cpu)")
    group.addoption("--goni-report", default=None, metavar="DIR", dest="goni_report",
                    help="write results JSON (every sample) and plots into DIR")
    group.addoption("--goni-list", action="store_true", default=False, dest="goni_list",
                    help="list the gates and measurements of the specs, run nothing")
    group.addoption("--goni-save", default=None, metavar="NAME", dest="goni_save",
                    help="store every gate's value, samples, units, profile and config as a new save of "
                         "baseline NAME (.goni/baselines/NAME/)")
    group.addoption("--goni-compare", default=None, metavar="NAME", dest="goni_compare",
                    help="judge '... of baseline' gates against the latest save of NAME (NAME~1: the one "
                         "before)")
    group.addoption("--goni-baselines", nargs="?", const="", default=None, metavar="NAME[,OTHER]",
                    dest="goni_baselines",
                    help="list stored baselines; NAME: its history gate by gate; A,B: compare two saves "
                         "(NAME~K: K saves back); runs nothing")
    group.addoption("--goni-dist", default="auto", choices=DIST_CHOICES, dest="goni_dist",
                    help="under xdist, a work unit is the gates sharing a measurement ('measurement') or a "
                         "whole spec ('spec'); auto: measurement when every worker has its own GPU")
    group.addoption("--goni-schema", default=None, metavar="PATH", dest="goni_schema",
                    help="write the JSON Schema of the spec format with every installed kind and backend "
                         "(plugins and conftest.py included) to PATH; runs nothing")
    group.addoption("--goni-kinds", action="store_true", default=False, dest="goni_kinds",
                    help="list the installed measurement kinds (params, defaults, metric keys); runs nothing")
    group.addoption("--goni-isolation", default="auto", choices=("auto", "fork", "none"), dest="goni_isolation",
                    help="where measurements run: fork (a child process per measurement: a crash fails "
                         "only its gates), none (in the test process), auto (fork on CPU, none on CUDA)")
    parser.addini("goni_specs", type="args", default=[],
                  help="specs run in addition to the tests when no --goni-spec is given")
