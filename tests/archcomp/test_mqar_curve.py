"""benchmarks/mqar_curve.py (the budget calibration of the archcomp profiles): one JSON line per run
with the validation curve, the first step at 0.95 read off that curve, and an early stop."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "mqar_curve.py"


def _main():
    spec = importlib.util.spec_from_file_location("mqar_curve", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main


def test_curve_rows_per_backend_with_first_step_at_095(tmp_path: Path) -> None:
    out = tmp_path / "c.jsonl"
    tiny = ["--V", "32", "--T", "16", "--kv", "2", "--d", "8", "--layers", "1", "--heads", "1", "--n", "64",
            "--batch", "8", "--steps", "4", "--every", "2", "--out", str(out)]
    assert _main()([*tiny, "--stop", "2", "--backend", "lstm", "transformer-rope"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["backend"] for r in rows] == ["lstm", "transformer-rope"]
    for r in rows:
        assert [s for s, _ in r["curve"]] == [2, 4] and r["final_val"] == r["curve"][-1][1]
        first = next((s for s, a in r["curve"] if a >= 0.95), None)
        assert r["first_step_095"] == first and r["stopped_at"] is None
        assert r["step_seconds_after_first"] > 0 and r["random_non_queries"] is False
    # --stop 0: the first evaluation reaches it, the run stops there
    assert _main()([*tiny, "--stop", "0"]) == 0
    last = json.loads(out.read_text().splitlines()[-1])
    assert last["curve"] == [[2, last["curve"][0][1]]] and last["stopped_at"] == 0


def _module():
    spec = importlib.util.spec_from_file_location("mqar_curve", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


TINY = ["--V", "32", "--T", "16", "--kv", "2", "--d", "8", "--layers", "2", "--heads", "1", "--n", "64",
        "--batch", "8", "--steps", "4", "--every", "2", "--stop", "2"]


def test_qkv_conv_binds_the_previous_token_into_each_key() -> None:
    """The diagnostic --qkv-conv: without it the first layer's keys at position t depend on token t
    only; with it, also on token t-1 (what DeltaNet's short conv gives its keys)."""
    import torch

    from pytest_goni.registry import load_builtins, resolve_backend

    mod = _module()
    load_builtins()

    def key_change(conv: int) -> float:
        model = resolve_backend("transformer-rope")(vocab_size=32, d_model=8, n_layers=1, n_heads=1, max_seq_len=8)
        model = mod.attention_variant(model, conv, no_mlp=False)
        attn = model.layers[0].parts[0]
        x = torch.tensor([[3, 5, 7, 9]])
        y = x.clone()
        y[0, 1] = 11  # change token 1; look at position 2's q/k/v
        def qkv(t):
            return attn.inner.qkv(attn.norm(model.embed(t)))[0, 2]
        with torch.no_grad():
            return float((qkv(x) - qkv(y)).abs().max())

    assert key_change(0) == 0.0
    assert key_change(4) > 1e-4


def test_variant_runs_are_recorded_and_tabled(tmp_path: Path) -> None:
    out = tmp_path / "v.jsonl"
    mod = _module()
    assert mod.main([*TINY, "--qkv-conv", "2", "--no-mlp", "--wd", "0.01", "--beta2", "0.999", "--clip", "0",
                     "--warmup", "0", "--min-lr-ratio", "1", "--out", str(out)]) == 0
    row = json.loads(out.read_text())
    assert row["qkv_conv"] == 2 and row["no_mlp"] is True and row["killed"] is False
    assert row["betas"] == [0.9, 0.999] and row["grad_clip"] == 0 and row["min_lr_ratio"] == 1
    line = mod.table([out]).splitlines()[1]
    assert line.startswith("transformer-rope") and "conv2 no-mlp wd0.01 clip0.0 b2 0.999" in line


def test_a_terminated_run_still_writes_its_curve(tmp_path: Path) -> None:
    """``timeout`` sends SIGTERM: the run so far is written, marked killed, and no further run starts."""
    out = tmp_path / "k.jsonl"
    mod = _module()
    calls = {"n": 0}
    real = mod.scores

    def scores_then_term(pred, data):
        calls["n"] += 1
        if calls["n"] == 2:
            mod._on_term(15, None)
        return real(pred, data)

    mod.scores = scores_then_term
    assert mod.main([*TINY, "--steps", "6", "--lr", "0.001", "0.002", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["killed"] is True and rows[0]["curve"] == [[2, rows[0]["curve"][0][1]]]


def test_zoology_reference_is_causal_tied_and_has_figure_2s_parameters() -> None:
    """benchmarks/zoology_attention.py: no look-ahead, the head is the token embedding, and the
    parameter count is fig. 2's shape (token + position tables, per layer Wqkv + out_proj with
    biases and two LayerNorms, a final LayerNorm; no MLP)."""
    import torch

    _module()  # puts benchmarks/ on sys.path
    from zoology_attention import ZoologyAttentionLM

    V, d, L, T = 50, 16, 2, 12
    model = ZoologyAttentionLM(V, d, n_layers=L, n_heads=1, max_seq_len=T).eval()
    assert model.head.weight is model.embed.weight
    per_layer = (3 * d * d + 3 * d) + (d * d + d) + 2 * (2 * d)
    assert sum(p.numel() for p in model.parameters()) == V * d + T * d + L * per_layer + 2 * d
    x = torch.randint(0, V, (1, T))
    y = x.clone()
    y[0, 6:] = (y[0, 6:] + 1) % V
    with torch.no_grad():
        a, b = model(x), model(y)
    torch.testing.assert_close(a[:, :6], b[:, :6], rtol=0, atol=0)
    assert (a[:, 6:] - b[:, 6:]).abs().max() > 1e-6


def test_zoology_reference_trains_through_the_curve_script(tmp_path: Path) -> None:
    out = tmp_path / "z.jsonl"
    assert _module().main([*TINY, "--backend", "zoology-attention", "--dropout", "0", "--out", str(out)]) == 0
    row = json.loads(out.read_text())
    assert row["backend"] == "zoology-attention" and row["dropout"] == 0 and [s for s, _ in row["curve"]] == [2, 4]


def test_rank_takes_the_best_lr_per_backend_and_the_kinds_kendall_tau(tmp_path: Path) -> None:
    """--table FILES --rank SPEC: Zoology's best-of-lrs per backend, named as the spec's models, and
    tau-b from pytest_goni.tasks.ranking against the spec's mqar expected_ranking; --tie-at counts
    every accuracy above it as equal."""
    from pytest_goni.tasks.ranking import kendall_ranking

    runs = [("transformer-rope", 0.002, 0.30), ("transformer-rope", 0.0005, 0.99), ("deltanet", 0.002, 1.0),
            ("lstm", 0.002, 0.05), ("gla", 0.002, 0.60), ("mamba2", 0.002, 0.97)]
    f = tmp_path / "runs.jsonl"
    f.write_text("".join(json.dumps({"backend": b, "lr": lr, "final_val": acc, "curve": [[98, acc]],
                                     "first_step_095": 98 if acc >= 0.95 else None, "killed": False,
                                     "stopped_at": None, "seconds_per_step": 0.1}) + "\n" for b, lr, acc in runs))
    spec = Path(__file__).resolve().parents[2] / "specs" / "archcomp.yaml"
    tiers = [["rope", "vanilla", "retnet"], ["deltanet", "gated_deltanet"], ["gla", "rwkv7"], ["lstm", "gru"]]
    text = _module().ranking([f], spec)
    assert "| rope (transformer-rope) | 0.0005 | 0.990 | 98 |" in text and "| mamba2 (mamba2) |" in text
    tau, pairs = kendall_ranking(tiers, {"rope": 0.99, "deltanet": 1.0, "lstm": 0.05, "gla": 0.60})
    assert f"expected_ranking: {tau:.3f}" in text and pairs == ["deltanet (tier 2) 1.000 > rope (tier 1) 0.990"]
    assert pairs[0] in text
    tied = _module().ranking([f], spec, tie_at=0.99)
    tau_tied, pairs_tied = kendall_ranking(tiers, {"rope": 0.99, "deltanet": 0.99, "lstm": 0.05, "gla": 0.60})
    assert f"(accuracies above 0.99 tied): {tau_tied:.3f}" in tied and pairs_tied == [] and tau_tied > tau
