"""specs/demo.yaml loads cleanly in every profile (the gpu one included, without a GPU)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_goni.registry import load_builtins
from pytest_goni.spec import load_spec

DEMO = Path(__file__).resolve().parents[2] / "specs" / "demo.yaml"


@pytest.mark.parametrize("profile", ["cpu", "gpu"], ids=["cpu_profile", "gpu_profile"])
def test_demo_spec_loads_in_each_profile(profile):
    load_builtins()
    spec = load_spec(DEMO, "specs/demo.yaml", profile=profile, cuda=profile == "gpu")
    assert spec.profile == profile
    ids = {g.id for g in spec.gates}
    assert {"sdpa-beats-naive-long", "sdpa-pct-roofline", "copy-bandwidth-floor"} <= ids
    assert all(g.raw.get("why") for g in spec.gates), "every gate says why"
    units = spec.metric_units
    assert units["attn.speedup.2048"] == "" and units["attn.sdpa_attention.2048.pct_roofline"] == "%"
    assert units["roof.copy.bandwidth"] == "B/s"
    attn = spec.measurements["attn"].params
    assert attn["dtype"] == ("bfloat16" if profile == "gpu" else "float32")
