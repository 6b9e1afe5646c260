"""Fixtures for plugin tests: a pytester whose conftest.py registers measurement kinds with
known outputs, the way a third party would (the pytest_goni_register hook)."""

import pytest

FAKE_CONFTEST = '''
import time
from pytest_goni.stats import Metric

def pytest_goni_register(registries):
    @registries.measurement_kind(
        "fake",
        schema={"type": "object", "additionalProperties": False,
                "properties": {"values": {"type": "object"}, "unit": {"type": "string"},
                               "samples": {"type": "integer", "minimum": 1}, "models": {"type": "array"}}},
        metrics=lambda p: {k: p.get("unit", "") for k in p.get("values", {})},
    )
    def fake(ctx, params):
        n = params.get("samples", 9)
        out = {}
        for key, v in params["values"].items():
            # deterministic spread of +-1% around v
            out[key] = Metric.of([v * (1 + 0.01 * ((i % 3) - 1)) for i in range(n)], params.get("unit", ""))
        with open(ctx.artifact("calls.log"), "a") as fh:
            fh.write(ctx.measurement + "\\n")
        return out

    @registries.measurement_kind(
        "boom", schema={"type": "object", "properties": {"message": {"type": "string"}}},
        metrics=lambda p: {"x": "s"},
    )
    def boom(ctx, params):
        raise RuntimeError(params.get("message", "kaboom"))

    @registries.measurement_kind(
        "sleepy", schema={"type": "object", "properties": {"seconds": {"type": "number"}}},
        metrics=lambda p: {"x": "s"},
    )
    def sleepy(ctx, params):
        time.sleep(params["seconds"])
        return {"x": Metric.scalar(1.0, "s")}

    @registries.measurement_kind(
        "whereami", schema={"type": "object", "properties": {"seconds": {"type": "number"}}},
        metrics=lambda p: {"x": "s"},
    )
    def whereami(ctx, params):
        # records where it really ran: one line per run, appended by whichever process ran it
        import os
        line = f"{ctx.spec_id}.{ctx.measurement} {os.environ.get('PYTEST_XDIST_WORKER', 'main')} {ctx.device}"
        with open(ctx.spec_path.parent / "where.log", "a") as fh:
            fh.write(line + "\\n")
        ctx.log("ran as " + line)
        time.sleep(params.get("seconds", 0.3))
        return {"x": Metric.scalar(0.5, "s")}

    @registries.measurement_kind(
        "drifting", schema={"type": "object", "properties": {"value": {"type": "number"}, "unit": {"type": "string"}}},
        metrics=lambda p: {"x": p.get("unit", "s")},
    )
    def drifting(ctx, params):
        # the same config measuring a different machine state: GONI_TEST_SCALE scales the value
        import os
        v = params["value"] * float(os.environ.get("GONI_TEST_SCALE", "1"))
        return {"x": Metric.of([v * (1 + 0.002 * (i % 3 - 1)) for i in range(9)], params.get("unit", "s"))}

    @registries.measurement_kind(
        "steps", schema={"type": "object", "properties": {"n": {"type": "integer"}}},
        metrics=lambda p: {"loss": ""},
    )
    def steps(ctx, params):
        # a training-like loop: says each step, checks its deadline between steps
        loss = 4.0
        for i in range(params.get("n", 4)):
            time.sleep(0.3)
            ctx.check_deadline()
            loss *= 0.9
            ctx.log(f"step {i + 1} loss {loss:.3f}")
        return {"loss": Metric.scalar(loss)}

    @registries.measurement_kind(
        "sweep", split="points",
        schema={"type": "object", "properties": {"points": {"type": "array", "items": {"type": "integer"}},
                                                 "seconds": {"type": "number"}, "total": {"type": "boolean"}}},
        metrics=lambda p: {**{f"p{v}.x": "s" for v in p["points"]}, **({"total": "s"} if p.get("total") else {})},
    )
    def sweep(ctx, params):
        # a sweep measuring each point on its own (split axis "points"): one where.log line per run,
        # with the points it measured and where; each point's samples depend on the point alone
        import os
        pts = params["points"]
        line = (f"{ctx.spec_id}.{ctx.measurement} {os.environ.get('PYTEST_XDIST_WORKER', 'main')} {ctx.device} "
                + ",".join(map(str, pts)))
        with open(ctx.spec_path.parent / "where.log", "a") as fh:
            fh.write(line + "\\n")
        time.sleep(params.get("seconds", 0.2) * len(pts))
        out = {f"p{v}.x": Metric.of([v * 0.01 * (1 + 0.01 * (i % 3 - 1)) for i in range(9)], "s") for v in pts}
        if params.get("total"):  # a key of no single point: the measurement cannot split
            out["total"] = Metric.scalar(sum(pts) * 0.01, "s")
        return out

    @registries.measurement_kind(
        "plotter", schema={"type": "object", "properties": {"value": {"type": "number"}}},
        metrics=lambda p: {"x": "s"},
    )
    def plotter(ctx, params):
        # a real 16x16 PNG written through ctx.artifact, as a plotting kind would
        import struct, zlib
        def chunk(tag, data):
            return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
        rows = b"".join(b"\\x00" + bytes([200, 30, 30]) * 16 for _ in range(16))
        png = (b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 16, 16, 8, 2, 0, 0, 0))
               + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
        ctx.artifact("value-vs-step.png").write_bytes(png)
        ctx.log("drew value-vs-step.png")
        return {"x": Metric.of([params["value"] * (1 + 0.01 * (i % 3 - 1)) for i in range(9)], "s")}
'''


@pytest.fixture
def goni(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester project with the fake kinds registered."""
    pytester.makeconftest(FAKE_CONFTEST)
    return pytester
