"""Kernel benchmark: pytest_goni.kernels vs flash-linear-attention and PyTorch SDPA, on one GPU.

    python benchmarks/kernels.py --out results.jsonl [--T 2048 8192 32768 131072]

Measures, for B=1, H=16, D=128, bf16: each linear-attention operator's chunked forward (ours, FLA
0.6.0's chunk_*), SDPA causal attention (cuDNN and flash backends), single-token decode at B=1 and
B=32 (ours eager and in a CUDA graph, FLA fused_recurrent_gla), and sliding-window attention vs
SDPA with a band mask. Times are CUDA-event times per call after warm-up (median, p20, p80 in ms);
the first call (Triton JIT / FLA autotune) is reported apart as `first_call_s`, the host's launch
work per call as `host_us_per_call`, and each prefill again replayed from a CUDA graph (`*_graph`:
the GPU's own time). `--sweep-ops` times our kernels' options (value block, warps, segment length). Peak memory is the
allocator's high-water mark during one call minus what was allocated before it. A roofline is
measured once (device-to-device copy bandwidth, bf16 matmul rate) and each result gets the floor
max(bytes / bandwidth, flops / rate) and the share of it reached. `--train-ops` times forward+backward
under autograd (ours through the dispatcher, FLA's chunk_* ops, the chunked torch form at short T)
at B=1 H=16 D=128 (2k, 8k, 32k) and the 8M model's training shape B=16 T=1024 H=6 D=64, with the
gradients' agreement with FLA's. Every line of the jsonl carries
date, device, versions, config and the exact command.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import platform
import sys
import time

import torch
import torch.nn.functional as F
from pytest_goni.kernels.testing import DISPATCH, at_time, make_inputs, random_state, rel_err
from pytest_goni.kernels.triton import common as wy_common

from pytest_goni import kernels
from pytest_goni.errors import exception_note, one_line
from pytest_goni.report.results import git_commit as results_git_commit

B, H, D = 1, 16, 128
CHUNK_FLOP_C = 64  # nominal chunk size in the linear-attention FLOP count


def git_commit() -> str:
    """The commit that ran, ``+dirty`` when the tree had changes (GONI_GIT_COMMIT on a lent GPU)."""
    head, dirty = results_git_commit()
    return (head or "?") + ("+dirty" if dirty else "")


def versions() -> dict:
    import triton

    try:
        import fla

        fla_v = getattr(fla, "__version__", "?")
    except Exception as exc:  # noqa: BLE001 - report why FLA is missing
        fla_v = f"unavailable: {exc}"
    return {"torch": torch.__version__, "triton": triton.__version__, "fla": fla_v,
            "cuda": torch.version.cuda, "python": platform.python_version()}


def time_ms(fn, rep_ms: float = 100.0) -> dict:
    """triton.testing.do_bench: warm-up, L2 flushed before each call, CUDA-event times per call."""
    from triton.testing import do_bench

    med, p20, p80 = do_bench(fn, warmup=25, rep=rep_ms, quantiles=[0.5, 0.2, 0.8])
    return {"ms": med, "p20_ms": p20, "p80_ms": p80, "timer": "triton.testing.do_bench median"}


def first_call_and_peak(fn) -> dict:
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    first = time.perf_counter() - t0
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return {"first_call_s": first, "peak_extra_bytes": torch.cuda.max_memory_allocated() - base}


def roofline() -> dict:
    x = torch.empty(2**28, device="cuda", dtype=torch.float32)  # 1 GiB
    x.normal_()
    y = torch.empty_like(x)
    t = time_ms(lambda: y.copy_(x))
    bw = 2 * x.numel() * 4 / (t["ms"] * 1e-3)
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    t2 = time_ms(lambda: a @ b)
    rate = 2 * 8192**3 / (t2["ms"] * 1e-3)
    return {"copy_bytes_per_s": bw, "bf16_matmul_flop_per_s": rate}


def linear_cost(op: str, t: int) -> tuple[float, float]:
    """(nominal FLOPs of a chunked forward, fewest bytes: inputs read once, output written once)."""
    flops = 2.0 * B * H * t * (CHUNK_FLOP_C * D + CHUNK_FLOP_C * D + 2 * D * D)
    n_vec = {"gla": 4, "simple_gla": 3, "delta_rule": 3, "gated_delta_rule": 3, "rwkv6": 4, "rwkv7": 6}[op]
    bytes_ = (n_vec + 1) * B * t * H * D * 2.0
    return flops, bytes_


def fla_fn(op: str, args: dict, sc: float = D**-0.5):
    """FLA 0.6.0's chunked forward for `op`, with our arguments (same conventions; checked below)."""
    from fla.ops.delta_rule import chunk_delta_rule
    from fla.ops.gated_delta_rule import chunk_gated_delta_rule
    from fla.ops.gla import chunk_gla
    from fla.ops.rwkv6 import chunk_rwkv6
    from fla.ops.rwkv7 import chunk_rwkv7
    from fla.ops.simple_gla import chunk_simple_gla

    a = args
    table = {
        "simple_gla": lambda: chunk_simple_gla(a["q"], a["k"], a["v"], g=a["g"], scale=sc),
        "gla": lambda: chunk_gla(a["q"], a["k"], a["v"], a["g"], scale=sc),
        "delta_rule": lambda: chunk_delta_rule(a["q"], a["k"], a["v"], a["beta"], scale=sc),
        "gated_delta_rule": lambda: chunk_gated_delta_rule(a["q"], a["k"], a["v"], a["g"], a["beta"],
                                                           scale=sc),
        "rwkv6": lambda: chunk_rwkv6(a["r"], a["k"], a["v"], a["w"], a["u"], scale=sc),
        "rwkv7": lambda: chunk_rwkv7(a["r"], a["w"], a["k"], a["v"], a["a"], a["b"], scale=sc),
    }
    return table[op]


def emit(rec: dict, meta: dict, fh) -> None:
    rec = {**meta, **rec}
    fh.write(json.dumps(rec) + "\n")
    fh.flush()


def with_roof(rec: dict, flops: float, bytes_: float, roof: dict) -> dict:
    sec = rec["ms"] * 1e-3
    floor = max(bytes_ / roof["copy_bytes_per_s"], flops / roof["bf16_matmul_flop_per_s"])
    rec.update(tflop_per_s=flops / sec / 1e12, gb_per_s=bytes_ / sec / 1e9, floor_ms=floor * 1e3,
               pct_of_roofline=100.0 * floor / sec)
    return rec


def triton_fn(op: str, args: dict, **options):
    """Our Triton forward for `op` called directly, with implementation options (bv, num_warps, ...)."""
    from pytest_goni.kernels.triton import delta_rule, gla, rwkv7, simple_gla

    a, sc = args, D**-0.5
    table = {
        "simple_gla": lambda: simple_gla.simple_gla_fwd(a["q"], a["k"], a["v"], a["g"], sc, **options),
        "gla": lambda: gla.gla_fwd(a["q"], a["k"], a["v"], a["g"], sc, **options),
        "rwkv6": lambda: gla.rwkv6_fwd(a["r"], a["k"], a["v"], a["w"], a["u"], sc, **options),
        "delta_rule": lambda: delta_rule.gated_delta_rule_fwd(a["q"], a["k"], a["v"], None, a["beta"], sc,
                                                              **options),
        "gated_delta_rule": lambda: delta_rule.gated_delta_rule_fwd(a["q"], a["k"], a["v"], a["g"], a["beta"],
                                                                    sc, **options),
        "rwkv7": lambda: rwkv7.rwkv7_fwd(a["r"], a["w"], a["k"], a["v"], a["a"], a["b"], sc, **options),
    }
    return table[op]


# implementation options swept by --sweep-ops: (name, options) per op; {} = the defaults
_SEGMENTS = [("default", {}), ("one_segment", dict(segment_chunks=0)), ("L4", dict(segment_chunks=4)),
             ("L16", dict(segment_chunks=16)), ("L64", dict(segment_chunks=64))]
_VECTOR = [("C64", dict(chunk=64)), ("bv64_w8", dict(bv=64, num_warps=8)), ("bv32_w4", dict(bv=32, num_warps=4))]
_DELTA = [("bv32_w8", dict(bv=32, num_warps=8)), ("bv64_w8", dict(bv=64, num_warps=8)),
          ("bv16_w4", dict(bv=16, num_warps=4)), ("precompute_att", dict(precompute_att=True)),
          ("inv_tf32x3", dict(inv_precision="tf32x3")), ("bv64_w4", dict(bv=64, num_warps=4)),
          ("bv32_w2", dict(bv=32, num_warps=2)), ("bv16_w2", dict(bv=16, num_warps=2)),
          ("L32", dict(segment_chunks=32)), ("L128", dict(segment_chunks=128))]
SWEEP = {
    "simple_gla": _SEGMENTS + [("bv128_w8", dict(bv=128, num_warps=8)), ("bv64_w8", dict(bv=64, num_warps=8))],
    "gla": _SEGMENTS + _VECTOR,
    "rwkv6": _SEGMENTS + _VECTOR,
    "delta_rule": _SEGMENTS + _DELTA,
    "gated_delta_rule": _SEGMENTS + _DELTA,
    "rwkv7": _SEGMENTS + [("C32", dict(chunk=32)), ("C64", dict(chunk=64)), ("bv32_w4", dict(bv=32, num_warps=4)),
                          ("bv128_w8", dict(bv=128, num_warps=8)), ("fused", dict(fused=True))],
}


def graph_ms(fn) -> dict:
    """The call captured in a CUDA graph and replayed: GPU time without the host's launch work."""
    fn()
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return time_ms(graph.replay)


def host_us(fn, n: int = 20) -> float:
    """Host time per call (launch work only): calls queued back to back without synchronizing."""
    fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    host = (time.perf_counter() - t0) / n
    torch.cuda.synchronize()
    return host * 1e6


def pairwise_fn(op: str, args: dict, chunk: int, num_warps: int):
    """The intra-chunk pairwise launch of the vector-decay ops alone (what the walk adds to)."""
    from pytest_goni.kernels.triton.intra import pairwise

    if op == "gla":
        return lambda: pairwise(args["q"], args["k"], args["g"], chunk, strict=False, num_warps=num_warps)
    if op == "rwkv6":
        return lambda: pairwise(args["r"], args["k"], args["w"], chunk, strict=True, u=args["u"], shift_x=True,
                                num_warps=num_warps)
    return None


def bench_sweep(ops, ts, roof, meta, fh, rows, configs=None):
    for t in ts:
        for op in ops:
            args = make_inputs(op, B, t, H, D, D, dtype=torch.bfloat16, device="cuda", seed=t)
            flops, bytes_ = linear_cost(op, t)
            for chunk, warps in ((32, 1), (32, 2), (32, 4), (64, 4)):
                fn = pairwise_fn(op, args, chunk, warps)
                if fn is None:
                    break
                rec = {**time_ms(fn, rep_ms=40.0), "section": "sweep", "op": op, "T": t,
                       "impl": f"pairwise_only_C{chunk}_w{warps}"}
                emit(rec, meta, fh)
                rows.append(rec)
            chosen = [(n, o) for n, o in SWEEP[op] if not configs or n in configs]
            for name, options in chosen:
                try:
                    fn = triton_fn(op, args, **options)
                    info = first_call_and_peak(fn)
                    rec = with_roof({**time_ms(fn, rep_ms=40.0), **info}, flops, bytes_, roof)
                    rec["host_us_per_call"] = host_us(fn)
                except Exception as exc:  # noqa: BLE001 - an option a kernel does not take, a compile failure
                    rec = {"error": exception_note(exc, 600)}
                    torch.cuda.empty_cache()
                rec.update(section="sweep", op=op, T=t, impl=name, options=options)
                emit(rec, meta, fh)
                rows.append(rec)
            torch.cuda.empty_cache()


def _prefill_one(op, t, roof, meta, fh, rows, fla_ops):
    args = make_inputs(op, B, t, H, D, D, dtype=torch.bfloat16, device="cuda", seed=t)
    flops, bytes_ = linear_cost(op, t)
    impls = {"ours": lambda: DISPATCH[op](**args, backend="triton")}
    if op in fla_ops:
        try:
            impls["fla"] = fla_fn(op, args)
        except Exception as exc:  # noqa: BLE001
            emit({"section": "prefill", "op": op, "T": t, "impl": "fla", "error": repr(exc)}, meta, fh)
    outs = {}
    for name, fn in impls.items():
        try:
            info = first_call_and_peak(fn)
            outs[name] = fn()[0]
            rec = with_roof({**time_ms(fn), **info}, flops, bytes_, roof)
            rec["host_us_per_call"] = host_us(fn)
        except torch.cuda.OutOfMemoryError as exc:
            rec = {"error": f"OOM: {exc}"[:200]}
            torch.cuda.empty_cache()
        rec.update(section="prefill", op=op, T=t, impl=name)
        emit(rec, meta, fh)
        rows.append(rec)
        if "error" in rec:
            continue
        try:  # the same call replayed from a CUDA graph: what the GPU itself takes
            grec = with_roof(graph_ms(fn), flops, bytes_, roof)
        except Exception as exc:  # noqa: BLE001 - FLA's autotuner or a host sync may not capture
            grec = {"error": f"no CUDA graph: {exc!r}"[:200]}
        grec.update(section="prefill", op=op, T=t, impl=f"{name}_graph")
        emit(grec, meta, fh)
        rows.append(grec)
    if "ours" in outs and "fla" in outs:
        diff = rel_err(outs["ours"].float(), outs["fla"].float())
        rows.append({"section": "agreement", "op": op, "T": t, "rel_err_ours_vs_fla": diff})
        emit(rows[-1], meta, fh)


def bench_prefill(ops, ts, roof, meta, fh, rows, fla_ops):
    for t in ts:
        for op in ops:
            _prefill_one(op, t, roof, meta, fh, rows, fla_ops)
            torch.cuda.empty_cache()


def _sdpa_one(t, roof, meta, fh, rows):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q, k, v = (torch.randn(B, H, t, D, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    flops = 2.0 * B * H * t * t * D  # causal: half of 4 B H T^2 D
    backends = (("sdpa_cudnn", SDPBackend.CUDNN_ATTENTION), ("sdpa_flash", SDPBackend.FLASH_ATTENTION))
    for name, backend in backends:
        def fn(backend=backend):
            with sdpa_kernel(backend):
                return F.scaled_dot_product_attention(q, k, v, is_causal=True)
        try:
            info = first_call_and_peak(fn)
            rec = with_roof({**time_ms(fn), **info}, flops, 4 * B * t * H * D * 2.0, roof)
        except Exception as exc:  # noqa: BLE001
            rec = {"error": repr(exc)[:200]}
        rec.update(section="prefill", op="softmax_causal", T=t, impl=name)
        emit(rec, meta, fh)
        rows.append(rec)


def bench_sdpa(ts, roof, meta, fh, rows):
    for t in ts:
        _sdpa_one(t, roof, meta, fh, rows)
        torch.cuda.empty_cache()


def _decode_one(op, bs, roof, meta, fh, rows):
    from fla.ops.gla import fused_recurrent_gla

    args = at_time(op, make_inputs(op, bs, 1, H, D, D, dtype=torch.bfloat16, device="cuda", seed=5), 0)
    state = random_state(bs, H, D, D, device="cuda")
    step = getattr(kernels, f"{op}_step")
    state_bytes = 2.0 * state.numel() * 4  # read once, written once

    def eager():
        return step(**args, state=state, inplace=True)
    info = first_call_and_peak(eager)
    recs = {"ours_eager": {**time_ms(eager), **info}}
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        eager()
    recs["ours_cudagraph"] = time_ms(graph.replay)
    graph8 = torch.cuda.CUDAGraph()  # 8 steps in one graph, as inside a model's decode graph
    with torch.cuda.graph(graph8):
        for _ in range(8):
            eager()
    rec8 = time_ms(graph8.replay)
    recs["ours_cudagraph_per_step_of_8"] = {k: (x / 8 if k.endswith("ms") else x) for k, x in rec8.items()}
    if op == "gla":
        fargs = {n: x[:, None] for n, x in args.items()}
        fs = state.clone()

        def fla_step():
            return fused_recurrent_gla(fargs["q"], fargs["k"], fargs["v"], gk=fargs["g"],
                                       initial_state=fs, output_final_state=True)
        recs["fla_fused_recurrent_gla"] = {**time_ms(fla_step), **first_call_and_peak(fla_step)}
    for name, rec in recs.items():
        sec = rec["ms"] * 1e-3
        rec.update(section="decode", op=op, B=bs, impl=name, state_bytes_moved=state_bytes,
                   gb_per_s=state_bytes / sec / 1e9,
                   pct_of_copy_bw=100.0 * state_bytes / sec / roof["copy_bytes_per_s"])
        emit(rec, meta, fh)
        rows.append(rec)


def bench_decode(roof, meta, fh, rows):
    for bs in (1, 32):
        for op in ("gla", "simple_gla", "gated_delta_rule", "rwkv7"):
            _decode_one(op, bs, roof, meta, fh, rows)


def _swa_one(t, window, roof, meta, fh, rows):
    q, k, v = (torch.randn(B, t, H, D, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    keys = min(t, window)
    flops = 4.0 * B * H * D * (t * keys - keys * (keys - 1) / 2)
    bytes_ = 4 * B * t * H * D * 2.0
    impls = {"ours": lambda: kernels.sliding_window_attention(q, k, v, window)}
    qh, kh, vh = (x.transpose(1, 2) for x in (q, k, v))
    if t <= 32768:  # the [T, T] band mask itself is T^2 bytes
        i = torch.arange(t, device="cuda")
        band = (i[None, :] <= i[:, None]) & (i[None, :] > i[:, None] - window)
        impls["sdpa_band_mask"] = lambda: F.scaled_dot_product_attention(qh, kh, vh, attn_mask=band)
    outs = {}
    for name, fn in impls.items():
        try:
            info = first_call_and_peak(fn)
            outs[name] = fn()
            rec = with_roof({**time_ms(fn), **info}, flops, bytes_, roof)
        except torch.cuda.OutOfMemoryError as exc:
            rec = {"error": f"OOM: {exc}"[:200]}
        rec.update(section="sliding_window", op="sliding_window", T=t, window=window, impl=name)
        emit(rec, meta, fh)
        rows.append(rec)
        torch.cuda.empty_cache()
    if len(outs) == 2:
        diff = rel_err(outs["ours"].float(), outs["sdpa_band_mask"].transpose(1, 2).float())
        rows.append({"section": "agreement", "op": "sliding_window", "T": t, "rel_err_ours_vs_fla": diff})
        emit(rows[-1], meta, fh)


def bench_swa(ts, window, roof, meta, fh, rows):
    for t in ts:
        _swa_one(t, window, roof, meta, fh, rows)
        torch.cuda.empty_cache()


# forward+backward shapes (B, T, H, D): B=1 H=16 D=128 at 2k / 8k / 32k and the 8M model's training shape
TRAIN_SHAPES = [(1, 2048, 16, 128), (1, 8192, 16, 128), (1, 32768, 16, 128), (16, 1024, 6, 64)]


def train_step(impl: str, op: str, args: dict, d: int):
    """One forward+backward of `op` (impl ours / fla / torch) with a fixed output gradient, grads reset
    each call (as an optimizer's zero_grad(set_to_none=True)); returns (step, leaves)."""
    leaves = {n: x.detach().clone().requires_grad_(True) for n, x in args.items()}
    sc = d**-0.5
    if impl == "fla":
        fwd = fla_fn(op, leaves, sc)
    else:
        backend = "torch" if impl == "torch" else "triton"

        def fwd():
            return DISPATCH[op](**leaves, scale=sc, backend=backend)
    first = next(iter(leaves.values()))
    gen = torch.Generator(device="cuda").manual_seed(7)
    do = torch.randn(*first.shape[:3], leaves["v"].shape[-1], device="cuda", generator=gen).to(first.dtype)

    def step():
        for x in leaves.values():
            x.grad = None
        fwd()[0].backward(do)
    return step, leaves


#: --train-signatures: "bf16" every input bf16; "model" the dtypes the (gated) DeltaNet layer hands the delta
#: rule under CUDA bf16 autocast (F.normalize's norm runs in float32, so q, k, and the gate g, are float32;
#: v, beta bf16); other ops run "bf16" only.
MODEL_FLOAT32 = {"delta_rule": ("q", "k"), "gated_delta_rule": ("q", "k", "g")}


def _train_one(op, shape, meta, fh, rows, fla_ops, torch_max_t, fla_shapes=(), signature="bf16"):
    b, t, h, d = shape
    args = make_inputs(op, b, t, h, d, d, dtype=torch.bfloat16, device="cuda", seed=t + b)
    if signature == "model":
        args = {n: x.float() if n in MODEL_FLOAT32.get(op, ()) else x for n, x in args.items()}
    with_fla = op in fla_ops and (not fla_shapes or shape in fla_shapes)
    impls = ["ours"] + (["fla"] if with_fla else []) + (["torch"] if t <= torch_max_t else [])
    grads = {}
    for impl in impls:
        try:
            step, leaves = train_step(impl, op, args, d)
            info = first_call_and_peak(step)
            step()
            grads[impl] = {n: x.grad.detach().clone() for n, x in leaves.items()}
            rec = {**time_ms(step), **info, "host_us_per_call": host_us(step)}
        except Exception as exc:  # noqa: BLE001 - OOM, a compile failure: keep the other rows
            rec = {"error": exception_note(exc, 600)}
        rec.update(section="train", op=op, B=b, T=t, H=h, D=d, impl=impl, signature=signature,
                   wy_mask_result=wy_common.WY_MASK_RESULT,
                   dtypes={n: str(x.dtype).removeprefix("torch.") for n, x in args.items()})
        emit(rec, meta, fh)
        rows.append(rec)
        torch.cuda.empty_cache()
    if "ours" in grads and "fla" in grads:
        errs = {n: rel_err(grads["ours"][n].float(), grads["fla"][n].float()) for n in grads["ours"]}
        rec = {"section": "train_agreement", "op": op, "B": b, "T": t, "H": h, "D": d, "rel_err_ours_vs_fla": errs}
        emit(rec, meta, fh)
        rows.append(rec)


def bench_train(ops, shapes, meta, fh, rows, fla_ops, torch_max_t, fla_shapes=(), signatures=("bf16",)):
    for shape in shapes:
        for op in ops:
            for sig in signatures:
                if sig == "bf16" or op in MODEL_FLOAT32:
                    _train_one(op, shape, meta, fh, rows, fla_ops, torch_max_t, fla_shapes, sig)


def train_table(rows) -> str:
    """Forward+backward rows: ms, peak MiB and first-call s per impl, and FLA's time / ours."""
    lines = ["fwd+bwd  op                B  T      H  D    impl         ms        peakMiB  first_s  fla/ours"]
    ours = {(r["op"], r["B"], r["T"]): r.get("ms") for r in rows
            if r.get("section") == "train" and r["impl"] == "ours" and r.get("signature", "bf16") == "bf16"}
    for r in rows:
        if r.get("section") == "train_agreement":
            worst = max(r["rel_err_ours_vs_fla"].values())
            lines.append(f"agree    {r['op']:<17} {r['B']:<2} {r['T']:<6} grads rel err ours vs FLA, "
                         f"worst = {worst:.2e} {r['rel_err_ours_vs_fla']}")
        if r.get("section") != "train":
            continue
        impl = r["impl"] + ("/model" if r.get("signature", "bf16") != "bf16" else "")
        head = f"fwd+bwd  {r['op']:<17} {r['B']:<2} {r['T']:<6} {r['H']:<2} {r['D']:<4} {impl:<12}"
        if "error" in r:
            lines.append(f"{head} {one_line(r['error'], 200)}")
            continue
        mine = ours.get((r["op"], r["B"], r["T"]))
        ratio = f"{r['ms'] / mine:6.2f}x" if r["impl"] == "fla" and mine else ""
        lines.append(f"{head} {r['ms']:9.4f} {r['peak_extra_bytes'] / 2**20:8.1f} {r['first_call_s']:8.2f} {ratio}")
    return "\n".join(lines)


def table(rows) -> str:
    lines = ["section          op                T/B     impl                        ms      p20-p80        "
             "TF/s   GB/s  %roof  peakMiB  first_s  host_us"]
    for r in rows:
        if r.get("section") == "agreement":
            lines.append(f"agree            {r['op']:<17} {r['T']:<7} rel_err ours vs baseline = "
                         f"{r['rel_err_ours_vs_fla']:.2e}")
            continue
        if "error" in r:
            lines.append(f"{r['section']:<16} {r['op']:<17} {r.get('T', r.get('B')):<7} {r['impl']:<22} "
                         f"{one_line(r['error'], 200)}")
            continue
        size = r.get("T", r.get("B"))
        roof = r.get("pct_of_roofline", r.get("pct_of_copy_bw", float("nan")))
        lines.append(
            f"{r['section']:<16} {r['op']:<17} {size:<7} {r['impl']:<22} {r['ms']:9.4f} "
            f"{r['p20_ms']:7.4f}-{r['p80_ms']:<7.4f} {r.get('tflop_per_s', float('nan')):6.1f} "
            f"{r.get('gb_per_s', float('nan')):6.0f} {roof:6.1f} "
            f"{r.get('peak_extra_bytes', float('nan')) / 2**20:8.1f} "
            f"{r.get('first_call_s', float('nan')):7.2f} {r.get('host_us_per_call', float('nan')):8.1f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="jsonl file to append results to")
    p.add_argument("--T", type=int, nargs="+", default=[2048, 8192, 32768, 131072])
    p.add_argument("--ops", nargs="+", default=list(DISPATCH))
    p.add_argument("--fla-ops", nargs="*", default=list(DISPATCH),
                   help="ops to run FLA for (its first call autotunes: 45-100 s per op on an H100)")
    p.add_argument("--swa-T", type=int, nargs="+", default=[2048, 8192, 32768])
    p.add_argument("--window", type=int, default=1024)
    p.add_argument("--skip", nargs="*", default=[], choices=["prefill", "sdpa", "decode", "swa", "sweep", "train"])
    p.add_argument("--train-ops", nargs="*", default=[], help="ops to time forward+backward (TRAIN_SHAPES)")
    p.add_argument("--train-fla-ops", nargs="*", default=[],
                   help="ops to time FLA's forward+backward for (first call autotunes: ~220 s per op on an H200)")
    p.add_argument("--train-shapes", nargs="*", default=[], help="B,T,H,D items (default: TRAIN_SHAPES)")
    p.add_argument("--train-fla-shapes", nargs="*", default=[],
                   help="B,T,H,D items to run FLA at (default: every train shape); its autotune is per D and H")
    p.add_argument("--train-signatures", nargs="+", default=["bf16"], choices=["bf16", "model"],
                   help="input dtypes of the forward+backward rows: all bf16, and/or as the (gated) DeltaNet "
                   "layer hands them under CUDA autocast (q, k, g float32; MODEL_FLOAT32)")
    p.add_argument("--train-torch-max-T", type=int, default=2048,
                   help="time the chunked torch form too where T is at most this")
    p.add_argument("--sweep-ops", nargs="*", default=[], help="ops whose implementation options to sweep")
    p.add_argument("--sweep-T", type=int, nargs="*", default=[2048, 8192, 32768, 131072])
    p.add_argument("--sweep-configs", nargs="*", default=[], help="names from SWEEP (all when empty)")
    a = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("benchmarks/kernels.py needs a CUDA device", file=sys.stderr)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = True
    meta = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "device": "cuda:0", "gpu": torch.cuda.get_device_name(0), "versions": versions(),
            "config": {"B": B, "H": H, "D": D, "dtype": "bfloat16"}, "git": git_commit(), "commit": git_commit(),
            "command": "python " + " ".join(sys.argv)}
    shapes = [tuple(int(x) for x in s.split(",")) for s in a.train_shapes] or TRAIN_SHAPES
    fla_shapes = [tuple(int(x) for x in s.split(",")) for s in a.train_fla_shapes]
    rows: list[dict] = []
    with open(a.out, "a") as fh:
        roof = roofline()
        emit({"section": "roofline", **roof}, meta, fh)
        print(f"roofline: copy {roof['copy_bytes_per_s'] / 1e9:.0f} GB/s, bf16 matmul "
              f"{roof['bf16_matmul_flop_per_s'] / 1e12:.0f} TFLOP/s", flush=True)
        sections = [("decode", lambda: bench_decode(roof, meta, fh, rows)),
                    ("sdpa", lambda: bench_sdpa(a.T, roof, meta, fh, rows)),
                    ("swa", lambda: bench_swa(a.swa_T, a.window, roof, meta, fh, rows)),
                    ("sweep", lambda: bench_sweep(a.sweep_ops, a.sweep_T, roof, meta, fh, rows, a.sweep_configs)),
                    ("prefill", lambda: bench_prefill(a.ops, a.T, roof, meta, fh, rows, a.fla_ops)),
                    ("train", lambda: bench_train(a.train_ops, shapes, meta, fh, rows, a.train_fla_ops,
                                                  a.train_torch_max_T, fla_shapes, a.train_signatures))]
        for name, run in sections:
            if name in a.skip:
                continue
            t0 = time.perf_counter()
            try:
                run()
            except Exception as exc:  # noqa: BLE001 - keep the other sections' numbers
                emit({"section": name, "error": exception_note(exc)}, meta, fh)
                print(f"section {name} failed: {exception_note(exc)}", flush=True)
            print(f"section {name} done in {time.perf_counter() - t0:.1f}s", flush=True)
    print(table([r for r in rows if not str(r.get("section", "")).startswith("train")]))
    print(train_table(rows))
    return 0 if all(not math.isnan(r.get("ms", 0.0)) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
