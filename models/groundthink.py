"""`groundthink`: the seeds' stateful hybrid of Mamba-2 and RWKV-6 (v5-gpt2-gates.md: "our
architecture (Mamba2+RWKV6)", "Your Mamba2+RWKV6 fusion", "Ablation studies (Mamba-only, RWKV-only,
fusion)").

The seeds name the two parts but not how they are joined, so the fusion is our choice:

**parallel with a learned per-channel mix** (default, ``fusion="parallel"``). Each layer feeds the
same normed input to a Mamba-2 SSD mixer and an RWKV-6 time-mix, and blends their outputs with
sigma(m) * mamba + (1 - sigma(m)) * rwkv, m a learned vector (starting at an even blend), followed
by an RWKV channel-mix. Why: (1) the seeds call it a *fusion* and plan *Mamba-only / RWKV-only /
fusion* ablations, and a learned mix contains both ablations as its end points (``fusion=
"mamba2-only"`` / ``"rwkv6-only"`` build exactly those); (2) every depth then holds both kinds of
memory the hybrid is meant to combine, Mamba-2's per-head scalar selective decay and RWKV-6's
per-channel data-dependent decay with its current-token bonus, and training decides per channel
which one to read; (3) the decode state stays O(1) in context, which is the statefulness the V5
gates test. The Mamba branch uses expand=1 by default, so the two branches together cost about one
Mamba-2 (expand=2) mixer. ``fusion="interleaved"`` (Mamba-2 on even layers, RWKV-6 on odd ones) is
kept for comparison.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pytest_goni import kernels
from pytest_goni.registry import backend

from . import fusion
from .base import CausalLM, Chain, ConfigError, ModelConfig, Residual, SeqModule, build
from .layers import init_linears
from .mamba2 import Mamba2Mixer
from .rwkv import ChannelMix, TimeMix6

Tensor = torch.Tensor

FUSIONS = ("parallel", "interleaved", "mamba2-only", "rwkv6-only")


class ParallelMix(SeqModule):
    """Mamba-2 and RWKV-6 side by side on the same input, blended by a learned per-channel gate."""

    def __init__(self, mamba: Mamba2Mixer, rwkv: TimeMix6, d: int):
        super().__init__()
        self.mamba, self.rwkv = mamba, rwkv
        self.mix = nn.Parameter(torch.zeros(d))  # sigmoid(0) = an even blend at start

    def _blend(self, ym: Tensor, yr: Tensor) -> Tensor:
        return torch.lerp(yr, ym, torch.sigmoid(self.mix).to(ym.dtype))  # gate * ym + (1 - gate) * yr

    def forward(self, x: Tensor) -> Tensor:
        return self._blend(self.mamba(x), self.rwkv(x))

    def prefill(self, x: Tensor) -> tuple[Tensor, Any]:
        (ym, sm), (yr, sr) = self.mamba.prefill(x), self.rwkv.prefill(x)
        return self._blend(ym, yr), {"mamba2": sm, "rwkv6": sr}

    def step(self, x: Tensor, state: dict[str, Any]) -> tuple[Tensor, Any]:
        (ym, sm), (yr, sr) = self.mamba.step(x, state["mamba2"]), self.rwkv.step(x, state["rwkv6"])
        return self._blend(ym, yr), {"mamba2": sm, "rwkv6": sr}

    def step_prenorm(self, x: Tensor, pending: Tensor | None, norm: nn.Module, state: dict[str, Any]
                     ) -> tuple[Tensor, Tensor, Any]:
        """(h, step(norm(h)), state), h = x + pending, with the fused GEMVs: the add and norm, RWKV-6's
        first ddlerp GEMV and Mamba-2's in_proj + conv step as one grouped GEMV (``kernels.shift_linear``,
        in_proj unshifted), RWKV-6's second grouped GEMV (:meth:`~TimeMix6.mixer_args`), both mixers'
        steps as one launch (``kernels.rwkv6_mamba2_step``), and one GEMV kernel for Mamba-2's norm +
        out_proj, RWKV-6's out projection and the blend of the two (``norm_linear(blend=((o, W_out), mix))``)."""
        if fusion.norm_args(norm, x) is None:
            h, n = fusion.add_norm(x, pending, norm)
            return (h, *self.step(n, state))
        rwkv, sr = self.rwkv, state["rwkv6"]
        groups = [(rwkv.maa_w1.t(), rwkv.maa_x), (self.mamba.in_proj.weight, None)]
        conv = self.mamba.conv_epilogue(state["mamba2"], rwkv.maa_w1.shape[1])
        h, xn, (low, zxbcdt) = fusion.shift_split_linear(x, pending, norm, sr["shift"], self, "in", groups,
                                                         tanh_groups=(0,), conv=conv)
        o, ym = kernels.rwkv6_mamba2_step(rwkv.mixer_args(xn, low, sr),
                                          self.mamba.ssd_args(zxbcdt, state["mamba2"], convolved=True))
        out = fusion.merged_linear(rwkv.out, "self", (rwkv.out,))[0]  # RWKV's out projection in the blend's GEMV
        y = self.mamba.output(ym, blend=((o, out), self.mix))
        return h, y, {"mamba2": state["mamba2"], "rwkv6": {"shift": xn, "S": sr["S"]}}


def _groundthink(cfg: ModelConfig, own: dict[str, Any]) -> CausalLM:
    fusion = own["fusion"]
    if fusion not in FUSIONS:
        raise ConfigError(f"groundthink: fusion must be one of {', '.join(FUSIONS)}, got {fusion!r}")
    d, n = cfg.d_model, cfg.n_layers
    d_ff = cfg.d_ff or 32 * -(-int(3.5 * d) // 32)

    def mamba() -> Mamba2Mixer:
        return Mamba2Mixer(d, cfg.n_heads, own["d_state"], own["expand"], own["conv_size"], cfg.norm_eps)

    def mixer(i: int) -> SeqModule:
        if fusion == "parallel":
            return ParallelMix(mamba(), TimeMix6(d, cfg.n_heads, i, n), d)
        if fusion == "mamba2-only" or (fusion == "interleaved" and i % 2 == 0):
            return mamba()
        return TimeMix6(d, cfg.n_heads, i, n)

    layers = [Chain(Residual(nn.LayerNorm(d, eps=cfg.norm_eps), mixer(i)),
                    Residual(nn.LayerNorm(d, eps=cfg.norm_eps), ChannelMix(d, d_ff, i, n, receptance=True)))
              for i in range(n)]
    model = CausalLM(cfg, layers, embed_norm=nn.LayerNorm(d, eps=cfg.norm_eps))
    init_linears(model.layers)
    return model


@backend("groundthink")
def build_groundthink(**config: Any) -> nn.Module:
    """GroundThink Mamba-2 + RWKV-6 hybrid (keys: common + fusion="parallel", d_state=64, expand=1,
    conv_size=4); see the module docstring for the fusion and why."""
    return build("groundthink", config, {"fusion": "parallel", "d_state": 64, "expand": 1, "conv_size": 4},
                 _groundthink)
