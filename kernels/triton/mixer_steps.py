"""One launch per recurrent mixer's decode step (definitions: `pytest_goni.kernels.mixer_steps`).

``_mixer_kernel``: one program per (value tile, batch x head) reads its [Dk, BV] tile of the state
once, computes the layer's gates from their raw inputs, updates the tile in place, reads it out and
applies the per-head norm and output gate (norm modes keep all of Dv in one tile). ``_conv_kernel``:
the short causal conv of one token, each program owning its channels' conv state. No host sync, no
data-dependent launch parameter: the step can be captured in a CUDA graph. A barrier separates
every load of a buffer from the stores that overwrite it, so threads holding copies of an element
cannot read a value already updated.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

GLA, RWKV6, DELTA, MAMBA2 = 0, 1, 2, 3


@triton.jit
def _log1p(y):
    """log(1 + y) accurate for small y (Goldberg's trick: no log1p in every Triton)."""
    u = 1.0 + y
    d = u - 1.0
    return tl.where(d == 0.0, y, tl.log(u) * (y / tl.where(d == 0.0, 1.0, d)))


@triton.jit
def _softplus(x):
    return tl.where(x > 20.0, x, tl.maximum(x, 0.0) + _log1p(tl.exp(-tl.abs(x))))


@triton.jit
def _mixer_body(iv, bh, q_ptr, k_ptr, v_ptr, gate_ptr, beta_ptr, og_ptr, p0_ptr, p1_ptr, p2_ptr, nw_ptr, nb_ptr,
                s_ptr, o_ptr, sq, sk, sv, sgate, sbeta, sog, qh, kh, nwh,
                scale, eps, temperature, H, DK, DV, R,
                MODE: tl.constexpr, HAS_G: tl.constexpr, HAS_OG: tl.constexpr,
                BK: tl.constexpr, BV: tl.constexpr, BR: tl.constexpr, HAS_GB: tl.constexpr):
    """One program's work: value tile iv of batch x head bh (see the module docstring)."""
    bi = bh // H
    h = bh % H
    ok = tl.arange(0, BK)
    ov = iv * BV + tl.arange(0, BV)
    mk = ok < DK
    mv = ov < DV
    m2 = mk[:, None] & mv[None, :]
    q = tl.load(q_ptr + bi * sq + h * qh + ok, mask=mk, other=0.0).to(tl.float32)
    k = tl.load(k_ptr + bi * sk + h * kh + ok, mask=mk, other=0.0).to(tl.float32)
    v = tl.load(v_ptr + bi * sv + h * DV + ov, mask=mv, other=0.0).to(tl.float32)
    sp = bh * DK * DV + ok[:, None] * DV + ov[None, :]
    s = tl.load(s_ptr + sp, mask=m2, other=0.0)
    if BR > 0:  # GLA's gate / RWKV-6's decay lora = W2 low (+ b) from a low-rank input [R] (W2 [H*DK, R] at p2)
        orr = tl.arange(0, BR)
        mr = orr < R
        low = tl.load(gate_ptr + bi * sgate + orr, mask=mr, other=0.0).to(tl.float32)
        w2 = tl.load(p2_ptr + (h * DK + ok)[:, None] * R + orr[None, :], mask=mk[:, None] & mr[None, :],
                     other=0.0).to(tl.float32)
        gr = tl.sum(w2 * low[None, :], 1)
        if HAS_GB:  # GLA's gate bias at p1
            gr = gr + tl.load(p1_ptr + h * DK + ok, mask=mk, other=0.0).to(tl.float32)
        gr = gr.to(gate_ptr.dtype.element_ty).to(tl.float32)  # rounded as the unfused linear stores it
    elif MODE <= 1:  # a per-channel gate [H*DK] (modes 2 and 3 read a scalar per head below)
        gr = tl.load(gate_ptr + bi * sgate + h * DK + ok, mask=mk, other=0.0).to(tl.float32)
    if MODE == 0:  # GLA: log-decay logsigmoid(gate) / temperature
        g = (tl.minimum(gr, 0.0) - _log1p(tl.exp(-tl.abs(gr)))) / temperature
        s = s * tl.exp(g)[:, None] + k[:, None] * v[None, :]
        o = tl.sum(q[:, None] * s, 0) * scale
    elif MODE == 1:  # RWKV-6: read with the bonus first, then decay exp(-exp(decay + lora))
        wl = gr
        dec = tl.load(p0_ptr + h * DK + ok, mask=mk, other=0.0).to(tl.float32)
        u = tl.load(p1_ptr + h * DK + ok, mask=mk, other=0.0).to(tl.float32)
        o = (tl.sum(q[:, None] * s, 0) + tl.sum(q * u * k, 0) * v) * scale
        s = s * tl.exp(-tl.exp(dec + wl))[:, None] + k[:, None] * v[None, :]
    elif MODE == 2:  # (gated) delta rule on L2-normalized q, k
        q = q / tl.maximum(tl.sqrt(tl.sum(q * q, 0)), 1e-12)
        k = k / tl.maximum(tl.sqrt(tl.sum(k * k, 0)), 1e-12)
        beta = tl.load(beta_ptr + bi * sbeta + h).to(tl.float32)
        beta = 1.0 / (1.0 + tl.exp(-beta))
        if HAS_G:
            a = tl.load(gate_ptr + bi * sgate + h).to(tl.float32)
            dtb = tl.load(p1_ptr + h).to(tl.float32)
            a_log = tl.load(p0_ptr + h).to(tl.float32)
            s = s * tl.exp(-tl.exp(a_log) * _softplus(a + dtb))
        ks = tl.sum(k[:, None] * s, 0)
        s = s + k[:, None] * (beta * (v - ks))[None, :]
        o = tl.sum(q[:, None] * s, 0) * scale
    else:  # Mamba-2 SSD: q = C, k = B (shared by the heads), v = dt x, D skip
        dt = _softplus(tl.load(gate_ptr + bi * sgate + h).to(tl.float32) + tl.load(p1_ptr + h).to(tl.float32))
        a_log = tl.load(p0_ptr + h).to(tl.float32)
        s = s * tl.exp(-dt * tl.exp(a_log)) + k[:, None] * (v * dt)[None, :]
        o = tl.sum(q[:, None] * s, 0) + v * tl.load(p2_ptr + h).to(tl.float32)
    tl.debug_barrier()
    tl.store(s_ptr + sp, s, mask=m2)
    if MODE == 0 or MODE == 2:  # RMSNorm per head
        o = tl.where(mv, o, 0.0)
        o = o * tl.rsqrt(tl.sum(o * o, 0) / DV + eps)
        o = o * tl.load(nw_ptr + h * nwh + ov, mask=mv, other=0.0).to(tl.float32)
    elif MODE == 1:  # GroupNorm per head
        mean = tl.sum(tl.where(mv, o, 0.0), 0) / DV
        dev = tl.where(mv, o - mean, 0.0)
        o = dev * tl.rsqrt(tl.sum(dev * dev, 0) / DV + eps)
        o = o * tl.load(nw_ptr + h * DV + ov, mask=mv, other=0.0).to(tl.float32) \
            + tl.load(nb_ptr + h * DV + ov, mask=mv, other=0.0).to(tl.float32)
    if HAS_OG:
        og = tl.load(og_ptr + bi * sog + h * DV + ov, mask=mv, other=0.0).to(tl.float32)
        o = o * og / (1.0 + tl.exp(-og))
    tl.store(o_ptr + bi * H * DV + h * DV + ov, o.to(o_ptr.dtype.element_ty), mask=mv)


@triton.jit
def _mixer_kernel(q_ptr, k_ptr, v_ptr, gate_ptr, beta_ptr, og_ptr, p0_ptr, p1_ptr, p2_ptr, nw_ptr, nb_ptr, s_ptr,
                  o_ptr, sq, sk, sv, sgate, sbeta, sog, qh, kh, nwh, scale, eps, temperature, H, DK, DV, R,
                  MODE: tl.constexpr, HAS_G: tl.constexpr, HAS_OG: tl.constexpr, BK: tl.constexpr,
                  BV: tl.constexpr, BR: tl.constexpr, HAS_GB: tl.constexpr):
    _mixer_body(tl.program_id(0), tl.program_id(1),
                q_ptr, k_ptr, v_ptr, gate_ptr, beta_ptr, og_ptr, p0_ptr, p1_ptr, p2_ptr, nw_ptr, nb_ptr, s_ptr,
                o_ptr, sq, sk, sv, sgate, sbeta, sog, qh, kh, nwh, scale, eps, temperature, H, DK, DV, R, MODE,
                HAS_G, HAS_OG, BK, BV, BR, HAS_GB)


@triton.jit
def _mixer_pair_kernel(q_ptr_a, k_ptr_a, v_ptr_a, gate_ptr_a, beta_ptr_a, og_ptr_a, p0_ptr_a, p1_ptr_a, p2_ptr_a,
                       nw_ptr_a, nb_ptr_a, s_ptr_a, o_ptr_a, sq_a, sk_a, sv_a, sgate_a, sbeta_a, sog_a, qh_a, kh_a,
                       nwh_a, scale_a, eps_a, temperature_a, H_a, DK_a, DV_a, R_a, q_ptr_b, k_ptr_b, v_ptr_b,
                       gate_ptr_b, beta_ptr_b, og_ptr_b, p0_ptr_b, p1_ptr_b, p2_ptr_b, nw_ptr_b, nb_ptr_b, s_ptr_b,
                       o_ptr_b, sq_b, sk_b, sv_b, sgate_b, sbeta_b, sog_b, qh_b, kh_b, nwh_b, scale_b, eps_b,
                       temperature_b, H_b, DK_b, DV_b, R_b, NVA, NA, NVB, MODE_A: tl.constexpr,
                       HAS_G_A: tl.constexpr, HAS_OG_A: tl.constexpr, BK_A: tl.constexpr, BV_A: tl.constexpr,
                       BR_A: tl.constexpr, HAS_GB_A: tl.constexpr, MODE_B: tl.constexpr, HAS_G_B: tl.constexpr,
                       HAS_OG_B: tl.constexpr, BK_B: tl.constexpr, BV_B: tl.constexpr, BR_B: tl.constexpr,
                       HAS_GB_B: tl.constexpr):
    """Two mixers' steps in one launch (groundthink's RWKV-6 and Mamba-2, side by side on the same
    input): programs 0..NA-1 do job A's grid (NVA value tiles per batch x head), the rest job B's."""
    pid = tl.program_id(0)
    if pid < NA:
        _mixer_body(pid % NVA, pid // NVA,
                    q_ptr_a, k_ptr_a, v_ptr_a, gate_ptr_a, beta_ptr_a, og_ptr_a, p0_ptr_a, p1_ptr_a, p2_ptr_a,
                    nw_ptr_a, nb_ptr_a, s_ptr_a, o_ptr_a, sq_a, sk_a, sv_a, sgate_a, sbeta_a, sog_a, qh_a, kh_a,
                    nwh_a, scale_a, eps_a, temperature_a, H_a, DK_a, DV_a, R_a, MODE_A, HAS_G_A, HAS_OG_A, BK_A,
                    BV_A, BR_A, HAS_GB_A)
    else:
        _mixer_body((pid - NA) % NVB, (pid - NA) // NVB,
                    q_ptr_b, k_ptr_b, v_ptr_b, gate_ptr_b, beta_ptr_b, og_ptr_b, p0_ptr_b, p1_ptr_b, p2_ptr_b,
                    nw_ptr_b, nb_ptr_b, s_ptr_b, o_ptr_b, sq_b, sk_b, sv_b, sgate_b, sbeta_b, sog_b, qh_b, kh_b,
                    nwh_b, scale_b, eps_b, temperature_b, H_b, DK_b, DV_b, R_b, MODE_B, HAS_G_B, HAS_OG_B, BK_B,
                    BV_B, BR_B, HAS_GB_B)


@triton.jit
def _conv_rows(x, c, mc, bi, cs_ptr, w_ptr, b_ptr, C, KM1, HAS_B: tl.constexpr, ACT: tl.constexpr,
               BJ: tl.constexpr):
    """The short conv step of channels c (mask mc) of batch row bi given their new inputs x (float32):
    returns act(conv) (float32) and shifts their conv state [B, C, KM1] in place. Each channel must
    belong to one program (the state update is not shared)."""
    c = tl.where(mc, c, 0)
    oj = tl.arange(0, BJ)
    mj = oj < KM1
    base = cs_ptr + bi * C * KM1 + c[:, None] * KM1 + oj[None, :]
    old = tl.load(base, mask=mc[:, None] & mj[None, :], other=0.0).to(tl.float32)
    nxt = tl.load(base + 1, mask=mc[:, None] & (oj[None, :] + 1 < KM1), other=0.0).to(tl.float32)
    w = tl.load(w_ptr + c[:, None] * (KM1 + 1) + oj[None, :], mask=mc[:, None] & mj[None, :],
                other=0.0).to(tl.float32)
    y = tl.sum(old * w, 1) + x * tl.load(w_ptr + c * (KM1 + 1) + KM1, mask=mc, other=0.0).to(tl.float32)
    if HAS_B:
        y += tl.load(b_ptr + c, mask=mc, other=0.0).to(tl.float32)
    if ACT:
        y = y / (1.0 + tl.exp(-y))
    new = tl.where(oj[None, :] == KM1 - 1, x[:, None], nxt)
    tl.debug_barrier()
    tl.store(base, new.to(cs_ptr.dtype.element_ty), mask=mc[:, None] & mj[None, :])
    return y


@triton.jit
def _conv_kernel(x_ptr, sx, cs_ptr, w_ptr, b_ptr, y_ptr, C, KM1,
                 HAS_B: tl.constexpr, ACT: tl.constexpr, BC: tl.constexpr, BJ: tl.constexpr):
    pc = tl.program_id(0)
    bi = tl.program_id(1)
    oc = pc * BC + tl.arange(0, BC)
    mc = oc < C
    x = tl.load(x_ptr + bi * sx + oc, mask=mc, other=0.0).to(tl.float32)
    y = _conv_rows(x, oc, mc, bi, cs_ptr, w_ptr, b_ptr, C, KM1, HAS_B, ACT, BJ)
    tl.store(y_ptr + bi * C + oc, y.to(y_ptr.dtype.element_ty), mask=mc)


def short_conv_step(x, conv_state, weight, bias, activation):
    b, c, km1 = conv_state.shape
    if not conv_state.is_contiguous():
        raise ValueError("conv_state must be contiguous [B, C, K-1] (it is updated in place)")
    weight = weight.contiguous()
    y = torch.empty(b, c, device=x.device, dtype=x.dtype)
    bc = 256
    _conv_kernel[(triton.cdiv(c, bc), b)](x, x.stride(0), conv_state, weight, x if bias is None else bias, y,
                                          c, km1, HAS_B=bias is not None, ACT=bool(activation), BC=bc,
                                          BJ=triton.next_power_of_2(max(km1, 1)), num_warps=4)
    return y


def _job(mode, q, k, v, state, out_dtype, *, gate=None, beta=None, og=None, p0=None, p1=None, p2=None,
         nw=None, nb=None, qh=None, kh=None, nwh=0, scale=1.0, eps=0.0, temperature=1.0, split_v=False,
         rank=0, has_gb=False):
    """One mixer step's launch: (output, runtime args, constexprs, grid (value tiles, batch x heads), warps)."""
    bs, h, dk, dv = state.shape
    o = torch.empty(bs, h * dv, device=v.device, dtype=out_dtype)
    bk = triton.next_power_of_2(dk)
    bv = triton.next_power_of_2(dv)
    if split_v:
        bv = min(bv, max(16, 4096 // bk))
    dummy = state

    def row(x):
        return 0 if x is None else x.stride(0)

    args = (q, k, v, dummy if gate is None else gate, dummy if beta is None else beta, dummy if og is None else og,
            dummy if p0 is None else p0, dummy if p1 is None else p1, dummy if p2 is None else p2,
            dummy if nw is None else nw, dummy if nb is None else nb, state, o,
            row(q), row(k), row(v), row(gate), row(beta), row(og), dk if qh is None else qh,
            dk if kh is None else kh, nwh, scale, eps, temperature, h, dk, dv, rank)
    const = {"MODE": mode, "HAS_G": gate is not None, "HAS_OG": og is not None, "BK": bk, "BV": bv,
             "BR": triton.next_power_of_2(rank) if rank else 0, "HAS_GB": has_gb}
    return o, args, const, (triton.cdiv(dv, bv), bs * h), 4 if bk * bv <= 4096 else 8


def _launch(mode, q, k, v, state, out_dtype, **kwargs):
    o, args, const, grid, warps = _job(mode, q, k, v, state, out_dtype, **kwargs)
    _mixer_kernel[grid](*args, **const, num_warps=warps)
    return o


def _pair(job_a, job_b):
    """Two jobs of `_job` as one `_mixer_pair_kernel` launch; their outputs."""
    (oa, args_a, const_a, (nva, nbha), wa), (ob, args_b, const_b, (nvb, nbhb), wb) = job_a, job_b
    const = {f"{k}_A": v for k, v in const_a.items()} | {f"{k}_B": v for k, v in const_b.items()}
    _mixer_pair_kernel[(nva * nbha + nvb * nbhb,)](*args_a, *args_b, nva, nva * nbha, nvb, **const,
                                                   num_warps=max(wa, wb))
    return oa, ob


def _mamba2_job(xbc, z, dt, state, dt_bias, A_log, D):
    _, h, n, p = state.shape
    return _job(MAMBA2, xbc[:, h * p + n:], xbc[:, h * p:], xbc, state, z.dtype, gate=dt, og=z,
                p0=A_log.contiguous(), p1=dt_bias.contiguous(), p2=D.contiguous(), qh=0, kh=0, split_v=True)


def mamba2_ssd_step(xbc, z, dt, state, dt_bias, A_log, D):
    o, args, const, grid, warps = _mamba2_job(xbc, z, dt, state, dt_bias, A_log, D)
    _mixer_kernel[grid](*args, **const, num_warps=warps)
    return o


def _rwkv6_job(r, k, v, w_lora, decay, g, bonus, state, ln_weight, ln_bias, eps, scale, lora_weight=None):
    low_rank = {} if lora_weight is None else {"p2": lora_weight.contiguous(), "rank": lora_weight.shape[1]}
    return _job(RWKV6, r, k, v, state, g.dtype, gate=w_lora, og=g, p0=decay.contiguous(), p1=bonus.contiguous(),
                nw=ln_weight.contiguous(), nb=ln_bias.contiguous(), scale=scale, eps=eps, **low_rank)


def rwkv6_mixer_step(r, k, v, w_lora, decay, g, bonus, state, ln_weight, ln_bias, eps, scale, lora_weight=None):
    o, args, const, grid, warps = _rwkv6_job(r, k, v, w_lora, decay, g, bonus, state, ln_weight, ln_bias, eps,
                                             scale, lora_weight)
    _mixer_kernel[grid](*args, **const, num_warps=warps)
    return o


def rwkv6_mamba2_step(rwkv, mamba):
    return _pair(_rwkv6_job(*rwkv), _mamba2_job(*mamba))


def gla_mixer_step(q, k, v, gate, out_gate, state, norm_weight, eps, temperature, scale, gate_weight=None,
                   gate_bias=None):
    low_rank = {} if gate_weight is None else {
        "p2": gate_weight.contiguous(), "p1": None if gate_bias is None else gate_bias.contiguous(),
        "rank": gate_weight.shape[1], "has_gb": gate_bias is not None}
    return _launch(GLA, q, k, v, state, out_gate.dtype, gate=gate, og=out_gate, nw=norm_weight.contiguous(),
                   scale=scale, eps=eps, temperature=temperature, **low_rank)


def delta_mixer_step(q, k, v, b, a, out_gate, state, A_log, dt_bias, norm_weight, eps, scale):
    return _launch(DELTA, q, k, v, state, v.dtype if out_gate is None else out_gate.dtype, gate=a, beta=b,
                   og=out_gate, p0=None if A_log is None else A_log.contiguous(),
                   p1=None if dt_bias is None else dt_bias.contiguous(), nw=norm_weight.contiguous(),
                   scale=scale, eps=eps)
