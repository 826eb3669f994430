"""Latency of the demo's models on this machine: model calls only (batch 1, no capture, crop
or overlay), p50 over ``calls`` timed calls after a warm-up.

A stand-in for ``usfm_edge.bench`` (issue #9), which times every backend x precision cell in
its own process: ``latency_rows`` is the one function to swap for it. Here the models are timed
one after another in the demo's own process, on one preprocessed test frame."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

WARMUP = 5


def time_calls(call: Callable[[], object], *, calls: int, warmup: int = WARMUP,
               advance: Callable[[int], None] = lambda n: None) -> dict[str, float]:
    """p50/p90 (ms) of ``calls`` calls of ``call`` after ``warmup`` untimed ones; fps = 1000 / p50."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000.0)
        advance(1)
    p50, p90 = np.percentile(times, [50, 90])
    return {"p50_ms": float(p50), "p90_ms": float(p90), "fps": 1000.0 / float(p50), "calls": calls}


def time_torch(model_dir: Path, x: np.ndarray, *, calls: int, advance=lambda n: None) -> dict[str, float]:
    """Eager fp32 torch on the CPU, the training framework's own speed."""
    import torch

    from usfm_edge.models import load_model_dir

    model = load_model_dir(model_dir).eval()
    tensor = torch.from_numpy(x)
    with torch.inference_mode():
        return time_calls(lambda: model(tensor), calls=calls, advance=advance)


def time_bundle(bundle: Path, x: np.ndarray, *, backend: str, precision: str, calls: int, threads: int | None = None,
                advance=lambda n: None) -> dict[str, Any]:
    """The runtime's own loaded model (hash-checked, the manifest's artifact), ``infer`` only."""
    from usfm_edge.backends.bundle import load_bundle

    model = load_bundle(bundle, backend=backend, precision=precision, threads=threads)
    return {**time_calls(lambda: model.infer(x), calls=calls, advance=advance), "runs_in": model.session.precision,
            "artifact": model.artifact.file}


def latency_rows(*, teacher: Path, student: Path, bundles: dict[str, Path], x: np.ndarray, calls: int,
                 threads: int | None = None, advance=lambda n: None) -> list[dict[str, Any]]:
    """One row per (model, precision, backend): the fp32 torch teacher and student, the
    student's fp32 ONNX on ONNX Runtime (the INT8 rows' reference on the same backend), and
    each INT8 bundle that passed its gate. Torch runs at its current thread count; pass the
    same ``threads`` for the runtime backends to compare like with like."""
    rows = [{"model": "teacher", "precision": "fp32", "backend": "torch", **time_torch(teacher, x, calls=calls,
                                                                                        advance=advance)},
            {"model": "student", "precision": "fp32", "backend": "torch", **time_torch(student, x, calls=calls,
                                                                                        advance=advance)}]
    if bundles:
        any_bundle = next(iter(bundles.values()))  # model.onnx (fp32) is in every bundle
        rows.append({"model": "student", "precision": "fp32", "backend": "onnxruntime",
                     **time_bundle(any_bundle, x, backend="onnxruntime", precision="fp32", calls=calls,
                                   threads=threads, advance=advance)})
    for backend, bundle in bundles.items():
        rows.append({"model": "student", "precision": "int8", "backend": backend,
                     **time_bundle(bundle, x, backend=backend, precision="int8", calls=calls, threads=threads,
                                   advance=advance)})
    return rows


def rows_expected(bundles: dict[str, Path]) -> int:
    return 2 + (1 + len(bundles) if bundles else 0)
