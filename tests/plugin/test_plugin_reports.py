"""The files a run leaves for people: report.html (opened in headless Chromium), summary.md (and
$GITHUB_STEP_SUMMARY), results.json valid against the shipped schema."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from importlib import resources

import pytest

SPEC = """\
goni: 1
id: rep
title: a report
measurements:
  m: {kind: fake, unit: s, values: {lat: 0.2, base: 0.02}}
  p: {kind: plotter, value: 0.05}
gates:
  - id: fast-enough
    value: m.base
    expect: "< 100 ms"
  - id: too-slow
    value: m.lat
    expect: "< 100 ms"
    why: latency budget of the seed
  - id: plotted-gate
    value: p.x
    expect: "< 1 s"
  - id: plotted-again
    value: p.x * 2
    expect: "< 1 s"
"""


@pytest.fixture
def report(goni: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(goni.path / "step-summary.md"))
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)  # this suite may itself run under xdist
    goni.path.joinpath("rep.yaml").write_text(textwrap.dedent(SPEC))
    res = goni.runpytest("--goni-spec", "rep.yaml", "--goni-report", "out", "-p", "no:randomly")
    res.assert_outcomes(passed=3, failed=1)
    assert "report.html" in res.stdout.str()
    return goni


def test_results_json_matches_the_shipped_schema(report: pytest.Pytester) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(resources.files("pytest_goni.schema").joinpath("results.schema.json").read_text())
    data = json.loads((report.path / "out" / "results.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(data)
    meas = data["specs"][0]["measurements"]["p"]
    assert meas["artifacts"] == ["rep.p.value-vs-step.png"]  # relative to the report folder
    # the in-process run inherits the worker id when this suite itself runs under xdist
    assert meas["log"] == ["drew value-vs-step.png"] and meas["worker"] == os.environ.get("PYTEST_XDIST_WORKER", "main")


def test_html_has_every_gate_and_the_plot_under_its_gate(report: pytest.Pytester) -> None:
    page = (report.path / "out" / "report.html").read_text()
    for gate in ("fast-enough", "too-slow", "plotted-gate", "plotted-again"):
        assert f"id='gate-rep-{gate}'" in page
    row = page.index("id='gate-rep-too-slow'")
    failing = page[row:page.index("id='gate-rep-plotted-gate'")]
    assert ">FAIL<" in failing and "&lt; 100 ms" in failing and "200 ms" in failing
    assert "latency budget of the seed" in failing and "expect: &quot;&lt; 100 ms&quot;" in failing  # YAML lines
    assert "<svg" in failing  # value, interval and threshold drawn
    # the plot is embedded once, under the first gate reading its measurement
    assert page.count("data:image/png;base64,") == 1
    plotted = page[page.index("id='gate-rep-plotted-gate'"):page.index("id='gate-rep-plotted-again'")]
    assert "data:image/png;base64," in plotted and "rep.p.value-vs-step.png" in plotted
    assert "drew value-vs-step.png" in page  # the measurement's log
    assert "torch" in page and "environment" in page
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")  # self-contained


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome", "headless_shell"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def test_html_opens_in_headless_chromium(report: pytest.Pytester) -> None:
    browser = _chromium()
    if browser is None:
        pytest.skip("no chromium binary on PATH (Debian: apt-get install chromium)")
    page = (report.path / "out" / "report.html").as_uri()
    shot = report.path / "shot.png"
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1200,1600",
             f"--user-data-dir={report.path / 'chrome-profile'}"]
    subprocess.run([*flags, f"--screenshot={shot}", page], capture_output=True, timeout=90, check=False)
    data = shot.read_bytes()
    assert data[:4] == b"\x89PNG" and len(data) > 20_000  # a rendered page, not a blank one
    dom = subprocess.run([*flags, "--dump-dom", page], capture_output=True, text=True, timeout=90).stdout
    row = dom[dom.index('id="gate-rep-too-slow"'):]
    assert "FAIL" in row[:2000]


def test_markdown_summary_goes_to_the_report_and_the_step_summary(report: pytest.Pytester) -> None:
    md = (report.path / "out" / "summary.md").read_text()
    assert "| Gate | | Value | ± | Threshold | Margin | Verdict |" in md
    lines = {line.split("|")[1].strip(): line for line in md.splitlines() if line.startswith("| ")}
    assert "↓" in lines["too-slow"] and "FAIL" in lines["too-slow"] and "200 ms" in lines["too-slow"]
    assert "PASS" in lines["fast-enough"]
    assert "latency budget" not in md and "rep.yaml:11" in md  # reasons of gates that did not pass, with line
    assert (report.path / "step-summary.md").read_text() == md


def test_a_report_page_can_be_redrawn_from_results_json(report: pytest.Pytester) -> None:
    from pytest_goni.report.html import render_html
    from pytest_goni.report.markdown import render_markdown

    data = json.loads((report.path / "out" / "results.json").read_text())
    assert "too-slow" in render_html(data, report.path / "out")
    assert "too-slow" in render_markdown(data)


def test_pytest_html_gets_values_charts_and_plots(goni: pytest.Pytester) -> None:
    pytest.importorskip("pytest_html")
    goni.path.joinpath("rep.yaml").write_text(textwrap.dedent(SPEC))
    res = goni.runpytest("--goni-spec", "rep.yaml", "--html", "r.html", "--self-contained-html", "-p", "no:randomly")
    res.assert_outcomes(passed=3, failed=1)
    page = (goni.path / "r.html").read_text()
    assert "goni value" in page and "threshold" in page
    assert "200 ms" in page and "too-slow" in page
    assert "svg" in page and "image/png" in page  # the gate chart and the measurement's plot
