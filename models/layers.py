"""Building blocks the linear-recurrent layers share: short causal convolutions, token shift,
per-head norms, rotary phases in the kernels' [B, T, H, D] layout, and the common init.

Each stateful block has the same three forms as a layer (parallel, prefill, one step), so a mixer
is written once and stays in parity by construction of its parts.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pytest_goni.kernels.short_conv import causal_conv_shifted
from torch import nn

from pytest_goni import kernels

Tensor = torch.Tensor

#: How ShortConv's parallel form runs: "conv1d" (cuDNN's depthwise nn.Conv1d, the default),
#: "shifted" (:func:`causal_conv_shifted`: K shifted multiply-adds, elementwise, so torch.compile fuses
#: it into one kernel each way) or "triton" (`kernels.causal_conv`: a Triton forward and backward with
#: the SiLU fused, a custom op torch.compile traces through; the shifted form's torch definition off
#: CUDA). The same function each way (tested); which trains faster on the H200 is measured by
#: benchmarks/train_profile.py before any default changes.
SHORT_CONV_FORM = "conv1d"
SHORT_CONV_FORMS = ("conv1d", "shifted", "triton")


class ShortConv(nn.Module):
    """Depthwise causal 1-D convolution over time (kernel K), optional SiLU: Mamba2 / DeltaNet style.

    State: the last K-1 *inputs* [B, C, K-1], zero-padded while fewer tokens have been seen.
    The parallel form runs as :data:`SHORT_CONV_FORM` says.
    """

    def __init__(self, channels: int, kernel_size: int = 4, bias: bool = False, activation: bool = True):
        super().__init__()
        self.kernel_size, self.activation = kernel_size, activation
        self.conv = nn.Conv1d(channels, channels, kernel_size, groups=channels, bias=bias,
                              padding=kernel_size - 1)

    def _act(self, y: Tensor) -> Tensor:
        return F.silu(y) if self.activation else y

    def forward(self, x: Tensor) -> Tensor:
        """x [B, T, C] -> [B, T, C]."""
        if SHORT_CONV_FORM in ("shifted", "triton"):  # the input in the dtype autocast gives nn.Conv1d
            dtype = torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type) else x.dtype
            if SHORT_CONV_FORM == "triton":
                return kernels.causal_conv(x.to(dtype), self.conv.weight[:, 0], self.conv.bias, self.activation)
            return self._act(causal_conv_shifted(x.to(dtype), self.conv.weight, self.conv.bias))
        if SHORT_CONV_FORM != "conv1d":
            raise ValueError(f"models.layers.SHORT_CONV_FORM must be one of {SHORT_CONV_FORMS}, "
                             f"got {SHORT_CONV_FORM!r}")
        t = x.shape[1]
        return self._act(self.conv(x.transpose(1, 2))[..., :t].transpose(1, 2))

    def prefill(self, x: Tensor) -> tuple[Tensor, Tensor]:
        k = self.kernel_size - 1
        xt = x.transpose(1, 2)
        cache = F.pad(xt, (max(0, k - xt.shape[-1]), 0))[..., -k:] if k else xt[..., :0]
        return self(x), cache.contiguous()

    def step(self, x: Tensor, cache: Tensor) -> tuple[Tensor, Tensor]:
        """x [B, C] -> [B, C]; the window is the cache plus this token."""
        window = torch.cat([cache, x[..., None]], dim=-1)  # [B, C, K]
        y = (window * self.conv.weight[:, 0, :]).sum(-1)
        if self.conv.bias is not None:
            y = y + self.conv.bias
        return self._act(y), window[..., 1:]


def token_shift(x: Tensor, last: Tensor | None = None) -> Tensor:
    """x shifted one step back in time: position t sees x[t-1] (``last`` or zeros at t = 0)."""
    if last is not None and x.shape[1] == 1:  # a decode step: no copy
        return last[:, None].to(x.dtype)
    prev = torch.zeros_like(x[:, :1]) if last is None else last[:, None].to(x.dtype)
    return torch.cat([prev, x[:, :-1]], dim=1)


def heads(x: Tensor, n_heads: int) -> Tensor:
    """[..., H*D] -> [..., H, D]."""
    return x.unflatten(-1, (n_heads, x.shape[-1] // n_heads))


class HeadRMSNorm(nn.Module):
    """RMSNorm over each head's channels with one weight of the head size (FLA's ``g_norm``)."""

    def __init__(self, head_dim: int, eps: float = 1e-5):
        super().__init__()
        self.norm = nn.RMSNorm(head_dim, eps=eps)

    def forward(self, x: Tensor) -> Tensor:
        """x [..., H, D] -> same."""
        return self.norm(x)


class HeadGroupNorm(nn.Module):
    """GroupNorm with one group per head over [..., H, D] (RetNet, RWKV ``ln_x``)."""

    def __init__(self, n_heads: int, head_dim: int, eps: float = 1e-5):
        super().__init__()
        self.norm = nn.GroupNorm(n_heads, n_heads * head_dim, eps=eps)

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        return self.norm(x.reshape(-1, shape[-2] * shape[-1])).view(shape)


def rotary_bthd(x: Tensor, start: int | Tensor, base: float = 10000.0) -> Tensor:
    """Rotary phases for x [B, T, H, D] at positions start .. start+T-1 (NeoX half-split layout).

    ``start`` may be a 0-d tensor (a decode state's position), so no host sync is needed."""
    d, t = x.shape[-1], x.shape[1]
    inv_freq = base ** (-torch.arange(0, d, 2, device=x.device, dtype=torch.float32) / d)
    pos = torch.arange(t, device=x.device, dtype=torch.float32) + start
    angles = (pos[:, None] * inv_freq[None, :])[None, :, None, :]  # [1, T, 1, D/2]
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def init_linears(module: nn.Module, std: float = 0.02) -> None:
    """N(0, std) for every nn.Linear weight and zero biases; special parameters keep their own init."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def inverse_softplus(x: Tensor) -> Tensor:
    return x + torch.log(-torch.expm1(-x))


def mamba_dt_bias(n: int, dt_min: float = 1e-3, dt_max: float = 0.1) -> Tensor:
    """Mamba's dt bias init: softplus(bias) log-uniform in [dt_min, dt_max]."""
    dt = torch.exp(torch.rand(n) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
    return inverse_softplus(dt.clamp(min=1e-4))
