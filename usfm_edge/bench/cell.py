"""One benchmark cell, measured in a process of its own so that its peak memory is its own.

    python -m usfm_edge.bench.cell SPEC.json RESULT.json

SPEC (written by ``usfm_edge.bench.runner``): ``backend``, ``precision``, and either
``bundle`` + ``artifact`` (a file of the bundle) or ``model_dir`` (backends that load one:
torch); ``threads``, ``device``, ``warmup``, ``iters``, ``batch_size``; ``inputs``: a .npy of
preprocessed frames (N, C, H, W) float32; ``outputs``: where to save this cell's outputs for
every input frame (run one frame at a time), or null.

What is timed is exactly ``session.run(x)`` on an already preprocessed array, with
``time.perf_counter``: no preprocessing, no file reading. Order: load (timed), the first run
(timed on its own: lazy compilation shows there), ``warmup`` runs, ``iters`` timed runs at
batch 1 on the first frame; at ``batch_size`` B > 1, one warm-up and ceil(iters / B) (at
least 3) timed runs on B frames, so both batch sizes see about the same number of frames.
Peak memory is this process's high-water RSS read after everything ran: the interpreter,
the libraries, the model and the outputs; ``rss_before_load_mb`` is the same figure before
the model was loaded.

RESULT: ``status`` ok | failed (with ``reason``), and the figures above (milliseconds,
frames per second, MiB)."""

from __future__ import annotations

import json
import math
import resource
import sys
import time
import traceback
from pathlib import Path

import numpy as np


def peak_rss_mb() -> float:
    """This process's peak resident memory. On Linux the high-water mark of its own address
    space (``VmHWM``): ``ru_maxrss`` survives ``exec`` and would report the forking parent's
    peak (hundreds of MiB when the parent holds torch after an export)."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)  # kB
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return round(kb / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def latency_stats(times_ms: list[float], batch: int) -> dict:
    t = np.asarray(times_ms)
    return {
        "batch": batch, "iters": len(t),
        "p50_ms": float(np.percentile(t, 50)), "p90_ms": float(np.percentile(t, 90)),
        "p99_ms": float(np.percentile(t, 99)), "mean_ms": float(t.mean()), "min_ms": float(t.min()),
        "fps": float(batch * 1e3 / t.mean()),
    }


def timed(run, x: np.ndarray, n: int) -> list[float]:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        run(x)
        times.append((time.perf_counter() - start) * 1e3)
    return times


def load_session(spec: dict):
    from usfm_edge.backends import get_backend

    backend = get_backend(spec["backend"])
    kwargs = {"threads": spec.get("threads"), "device": spec.get("device", "CPU")}
    if spec.get("model_dir"):
        return backend.load(spec["model_dir"], precision=spec["precision"], **kwargs)
    from usfm_edge.contracts.manifest import read_verified

    bundle = Path(spec["bundle"])
    manifest = read_verified(bundle)
    artifact = next(a for a in manifest.artifacts if a.file == spec["artifact"])
    # Backends that need more than the file (TensorRT builds its engine) override load_artifact.
    return backend.load_artifact(bundle, manifest, artifact, **kwargs)


def inference_precision(session) -> str | None:
    """OpenVINO's precision for the layers that are not quantized (bf16 by default on CPUs
    that have it), read back from the compiled model; None for other backends."""
    compiled = getattr(session, "compiled", None)
    if compiled is None or not hasattr(compiled, "get_property"):
        return None
    try:
        value = compiled.get_property("INFERENCE_PRECISION_HINT")  # an openvino.Type
    except Exception:  # a device without the property
        return None
    name = value.get_type_name() if hasattr(value, "get_type_name") else str(value)
    return {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}.get(name.lower(), name.lower())


def measure(spec: dict) -> dict:
    inputs = np.load(spec["inputs"])  # (N, C, H, W) float32
    result: dict = {"rss_before_load_mb": peak_rss_mb()}
    start = time.perf_counter()
    session = load_session(spec)
    result["load_s"] = time.perf_counter() - start
    result["runs_in"] = session.precision
    result["float_precision"] = inference_precision(session)
    x1 = inputs[:1]
    if spec["iters"] > 0:
        result["first_run_ms"] = timed(session.run, x1, 1)[0]
        timed(session.run, x1, spec["warmup"])
        result["latency"] = latency_stats(timed(session.run, x1, spec["iters"]), 1)
        batch = spec.get("batch_size", 1)
        if batch > 1:
            xb = np.take(inputs, np.arange(batch) % len(inputs), axis=0)  # (B, C, H, W), frames repeated if few
            try:
                timed(session.run, xb, 1)
                result["batch"] = latency_stats(timed(session.run, xb, max(3, math.ceil(spec["iters"] / batch))), batch)
            except Exception as exc:  # a static-batch artifact: batch 1 figures still stand
                result["batch"] = {"batch": batch, "error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
    if spec.get("outputs"):
        outputs = np.concatenate([session.run(inputs[i:i + 1]) for i in range(len(inputs))])
        np.save(spec["outputs"], outputs.astype(np.float32, copy=False))
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def main(argv: list[str]) -> int:
    spec_path, result_path = map(Path, argv)
    spec = json.loads(spec_path.read_text())
    try:
        result = {"status": "ok", **measure(spec)}
    except Exception as exc:  # reported as a failed cell; the bench goes on with the others
        from usfm_edge.errors import UsfmEdgeError

        reason = str(exc) if isinstance(exc, UsfmEdgeError) else f"{type(exc).__name__}: {exc}"
        first_line = reason.strip().splitlines()[0] if reason.strip() else type(exc).__name__
        result = {"status": "failed", "reason": first_line}
        if not isinstance(exc, UsfmEdgeError):
            traceback.print_exc()
    result_path.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
