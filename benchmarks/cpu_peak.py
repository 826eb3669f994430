"""This CPU's measured peak: operations per second of a large GEMM in fp32, bf16 and int8,
each through every library that has a fast kernel for it, the best one taken as the peak.

The peak is measured, not read off a datasheet: what a well-tuned kernel reaches on these
cores, at this clock, with this many threads and whatever else the machine is doing. A GEMM
of M x K by K x N is 2 * M * N * K operations (a multiply and an add per MAC).

    python -m benchmarks.cpu_peak --size 2048 --threads 2 --out benchmarks/results

fp32: torch.matmul (oneDNN / MKL), OpenVINO MatMul with the f32 hint. (Not numpy: OpenBLAS
picks its own thread count at import.)
bf16: torch.matmul on bf16 tensors, OpenVINO MatMul with the bf16 hint.
int8: torch._int_mm (int8 x int8 -> int32), OpenVINO's int8 MatMul (a FakeQuantize'd input
times int8 weights, what NNCF's models run; the kernel multiplies u8 x s8 with VNNI).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks.store import store
from usfm_edge.bench.machine import describe


def best_seconds(run: Callable[[], object], reps: int) -> float:
    run()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def torch_gemm(n: int, kind: str, threads: int) -> Callable[[], object]:
    import torch

    torch.set_num_threads(threads)
    if kind == "int8":
        a = torch.randint(-128, 127, (n, n), dtype=torch.int8)
        b = torch.randint(-128, 127, (n, n), dtype=torch.int8)
        return lambda: torch._int_mm(a, b)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[kind]
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    return lambda: torch.matmul(a, b)


def openvino_gemm(n: int, kind: str, threads: int) -> Callable[[], object]:
    import openvino.opset13 as ops

    from usfm_edge.offline import import_quietly

    ov = import_quietly("openvino")
    rng = np.random.default_rng(0)
    x = ops.parameter([n, n], np.float32, name="x")
    if kind == "int8":
        lo, hi = ops.constant(np.float32(-4)), ops.constant(np.float32(4))
        weights = ops.constant(rng.integers(-127, 127, (n, n)).astype(np.int8))
        scale = ops.constant(np.full((n, 1), 0.01, np.float32))
        y = ops.matmul(ops.fake_quantize(x, lo, hi, lo, hi, 256), ops.multiply(ops.convert(weights, "f32"), scale),
                       False, True)
        hint = {}
    else:
        y = ops.matmul(x, ops.constant(rng.random((n, n), dtype=np.float32)), False, True)
        hint = {"INFERENCE_PRECISION_HINT": {"fp32": "f32", "bf16": "bf16"}[kind]}
    compiled = ov.Core().compile_model(ov.Model([y], [x]), "CPU", {"INFERENCE_NUM_THREADS": threads, **hint})
    request, data = compiled.create_infer_request(), rng.random((n, n), dtype=np.float32)
    return lambda: request.infer({0: data})


KERNELS = {
    "fp32": {"torch.matmul": torch_gemm, "openvino": openvino_gemm},
    "bf16": {"torch.matmul": torch_gemm, "openvino": openvino_gemm},
    "int8": {"torch._int_mm": torch_gemm, "openvino": openvino_gemm},
}


def measure_peaks(*, size: int = 2048, threads: int | None = None, reps: int = 30) -> dict:
    """{precision: {"peak_gops", "by": library, "libraries": {library: gops | error}}}."""
    threads = threads or len(os.sched_getaffinity(0))
    ops = 2 * size ** 3
    peaks = {}
    for kind, kernels in KERNELS.items():
        by_library: dict[str, float | str] = {}
        for library, make in kernels.items():
            try:
                by_library[library] = round(ops / best_seconds(make(size, kind, threads), reps) / 1e9, 1)
            except Exception as exc:  # a library without this kernel on this CPU
                by_library[library] = f"{type(exc).__name__}: {exc}".splitlines()[0]
        numbers = {k: v for k, v in by_library.items() if isinstance(v, float)}
        best = max(numbers, key=numbers.get) if numbers else None
        peaks[kind] = {"peak_gops": numbers.get(best), "by": best, "libraries": by_library}
    return {"size": size, "threads": threads, "reps": reps, "peaks": peaks}


def best_of(*runs: dict) -> dict:
    """Several ``measure_peaks`` results merged, the best figure of each precision kept (on a
    shared machine a run at a quieter moment gets closer to the peak)."""
    merged = json.loads(json.dumps(runs[0]))
    for run in runs[1:]:
        for kind, peak in run["peaks"].items():
            if (peak["peak_gops"] or 0) > (merged["peaks"][kind]["peak_gops"] or 0):
                merged["peaks"][kind] = peak
    merged["runs"] = len(runs)
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048, help="M = N = K of the GEMM")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--reps", type=int, default=30, help="the best of these is kept: noise only slows")
    parser.add_argument("--rounds", type=int, default=3, help="repeat the whole measurement, keep the best of each")
    parser.add_argument("--tag", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    rounds = [measure_peaks(size=args.size, threads=args.threads, reps=args.reps) for _ in range(args.rounds)]
    result = {"benchmark": "cpu_peak", "date": dt.date.today().isoformat(), "machine": describe(), **best_of(*rounds)}
    stem = args.out / f"cpu_peak_{args.tag}"
    lines = [f"Measured GEMM peak, {args.size}^3, {args.threads} threads, best of {args.reps} x {args.rounds} rounds, "
             f"{result['machine']['cpu']} ({result['date']})", "",
             "| precision | peak (GOPS) | by | every library (GOPS) |", "|---|---:|---|---|"]
    for kind, peak in result["peaks"].items():
        every = ", ".join(f"{k} {v}" for k, v in peak["libraries"].items())
        lines.append(f"| {kind} | {peak['peak_gops']} | {peak['by']} | {every} |")
    store(stem, result, lines)


if __name__ == "__main__":
    main()
