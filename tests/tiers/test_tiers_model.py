"""The mincut-gated backend: tier 0 is the plain windowed Transformer, the degraded tiers are what
they say, a tier-3 cache hit returns the stored logits exactly, and the KV counts are right."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from pytest_goni.kernels.reference import sliding_window_attention_ref
from pytest_goni.kernels.sliding_window import sliding_window_attention_banded, sliding_window_attention_torch
from pytest_goni.models.base import ConfigError
from pytest_goni.models.gate_policy import CODE_DEFAULT, DOCUMENTED, FLAG_FORCE_SAFE, GatePacket, SpikePacket, decide
from pytest_goni.models.layers import rotary_bthd
from pytest_goni.models.mincut_gated import PRESETS, GatedSession, window_reads

from pytest_goni.registry import load_builtins, resolve_backend

load_builtins()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def micro(**over):
    return resolve_backend("mincut-gated")(preset="micro", **over).double()


def tokens(t: int, seed: int = 0, vocab: int = 256) -> torch.Tensor:
    return torch.randint(0, vocab, (2, t), generator=torch.Generator().manual_seed(seed))


def plain_windowed_transformer(model, x: torch.Tensor, n_layers: int, window: int) -> torch.Tensor:
    """The textbook form in float64 (the model's attention runs in float32): embedding, pre-LN
    blocks with a band-masked softmax, head."""
    h = model.embed(x)
    t = x.shape[1]
    i = torch.arange(t)
    band = (i[None, :] <= i[:, None]) & (i[None, :] > i[:, None] - window)
    for block in model.layers[:n_layers]:
        a = block.attn
        u = block.ln1(h)
        q, k, v = a.qkv(u).view(*u.shape[:2], 3, a.n_heads, -1).unbind(2)
        q, k = rotary_bthd(q, 0), rotary_bthd(k, 0)
        s = torch.einsum("bthd,bshd->bhts", q, k) * q.shape[-1] ** -0.5
        o = torch.einsum("bhts,bshd->bthd", torch.softmax(s.masked_fill(~band, float("-inf")), -1), v)
        h = h + a.out(o.flatten(2))
        h = h + block.mlp(block.ln2(h))
    return model.head(model.norm(h))


def test_presets_are_the_crates():
    m = resolve_backend("mincut-gated")(preset="micro")
    assert (m.config.d_model, m.config.n_heads, m.config.n_layers, m.vocab_size) == (128, 4, 2, 256)
    assert [(s.layers, s.seq_len, s.window) for s in m.tiers.values()] == [(2, 32, 8), (1, 16, 4), (1, 4, 4)]
    b = resolve_backend("mincut-gated")(preset="baseline")
    assert (b.config.d_model, b.config.n_heads, b.config.n_layers, b.vocab_size) == (256, 4, 4, 1024)
    assert [(s.layers, s.seq_len, s.window) for s in b.tiers.values()] == [(4, 64, 16), (2, 32, 8), (1, 8, 4)]
    assert b.layers[0].mlp.up.out_features == 4 * 256  # ffn_mult 4
    assert set(PRESETS) == {"micro", "baseline"}


def test_bad_config_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown preset 'tiny'"):
        resolve_backend("mincut-gated")(preset="tiny")
    with pytest.raises(ConfigError, match="degraded tiers must not exceed tier 0"):
        resolve_backend("mincut-gated")(preset="micro", window_degraded=16)


def test_tier0_is_the_plain_windowed_transformer():
    m = micro()
    x = tokens(32)
    ref = plain_windowed_transformer(m, x, 2, 8)
    torch.testing.assert_close(m(x), ref, atol=2e-6, rtol=1e-5)
    logits, kv, shape = m.run_tier(x, 0)
    torch.testing.assert_close(logits, ref[:, -1], atol=2e-6, rtol=1e-5)
    assert (shape.layers, shape.seq_len, shape.window) == (2, 32, 8) and len(kv) == 2


def test_tier1_and_tier2_are_early_exits_on_the_last_tokens():
    m = micro()
    x = tokens(32, seed=1)
    t1, kv1, _ = m.run_tier(x, 1)
    torch.testing.assert_close(t1, plain_windowed_transformer(m, x[:, -16:], 1, 4)[:, -1], atol=2e-6, rtol=1e-5)
    t2, kv2, _ = m.run_tier(x, 2)
    torch.testing.assert_close(t2, plain_windowed_transformer(m, x[:, -4:], 1, 4)[:, -1], atol=2e-6, rtol=1e-5)
    assert len(kv1) == len(kv2) == 1
    dense, _, shape = m.run_tier(x, 0, dense=True)
    assert shape.window == 32
    torch.testing.assert_close(dense, plain_windowed_transformer(m, x, 2, 32)[:, -1], atol=2e-6, rtol=1e-5)


def test_tier3_cache_hit_returns_the_stored_logits_exactly():
    m = micro()
    sess = GatedSession(m)
    x = tokens(32, seed=2)[0]
    first = sess.infer(x, decide(GatePacket(100, 100), SpikePacket(True, 100)))
    hit = sess.infer(x, decide(GatePacket(100, 100), SpikePacket(False)))
    assert first.tier == 0 and hit.tier == 3 and hit.cache_hit
    assert torch.equal(hit.logits, first.logits)
    other = tokens(32, seed=3)[0]
    miss = sess.infer(other, decide(GatePacket(100, 100), SpikePacket(False)))
    assert not miss.cache_hit and miss.kv_read == miss.kv_written == 0
    torch.testing.assert_close(miss.logits, m.head(m.norm(m.embed(other[-1]))))


def test_kv_bytes_read_and_written_per_tier():
    m = micro()
    sess = GatedSession(m)
    x = tokens(32, seed=4)[0]
    d, item = 128, 8  # float64 here
    t0 = sess.infer(x, decide(GatePacket(100, 100), None))
    assert t0.kv_written == 2 * 32 * 2 * d * item
    assert t0.kv_read == 2 * 2 * window_reads(32, 8) * d * item
    t1 = sess.infer(x, decide(GatePacket(100, 100, boundary_edges=30), None, CODE_DEFAULT))
    assert t1.tier == 1 and t1.kv_written == 1 * 16 * 2 * d * item
    t1_doc = sess.infer(x, decide(GatePacket(100, 100, boundary_edges=30), None, DOCUMENTED))
    assert t1_doc.tier == 1 and t1_doc.kv_written == 0  # no KV writes when unstable
    t2 = sess.infer(x, decide(GatePacket(100, 100, flags=FLAG_FORCE_SAFE), None))
    assert t2.tier == 2 and t2.kv_written == 0 and t2.kv_read == 2 * window_reads(4, 4) * d * item
    layer0_k = sess.kv[0, 0, :16]
    torch.testing.assert_close(layer0_k, m.run_tier(x[None], 1)[1][0][0][0].flatten(1))


def test_window_reads_counts_the_band():
    for n in (1, 3, 8, 9, 50):
        for w in (1, 4, 8):
            assert window_reads(n, w) == sum(min(t + 1, w) for t in range(n))


@pytest.mark.parametrize("t,w", [(1, 4), (7, 8), (40, 8), (150, 16)])
def test_banded_attention_matches_the_float64_reference(t, w):
    g = torch.Generator().manual_seed(t)
    q, k, v = (torch.randn(2, t, 3, 16, generator=g) for _ in range(3))
    ref = sliding_window_attention_ref(q.double(), k.double(), v.double(), w, 0.25).float()
    torch.testing.assert_close(sliding_window_attention_banded(q, k, v, w, 0.25), ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(sliding_window_attention_torch(q, k, v, w, 0.25), ref, atol=1e-5, rtol=1e-5)


def test_early_exit_training_runs_shallow_forwards():
    m = resolve_backend("mincut-gated")(preset="micro", tier_dropout=0.99).train()
    x = tokens(32, seed=5)
    torch.manual_seed(0)
    full = m.eval()(x)
    m.train()
    shallow = m(x)
    assert shallow.shape == full.shape and not torch.allclose(shallow, full)
    F.cross_entropy(shallow.flatten(0, 1), x.flatten()).backward()
