"""The vendors' own benchmark tools on the same artifact, to check our timing loop against
theirs: OpenVINO's ``benchmark_app`` for OpenVINO cells, NVIDIA's ``trtexec`` for TensorRT
cells. Each gives a median and a minimum latency at batch 1; the cell reports ``ratio`` = our p50 /
their median (1.05 means our loop adds 5 %) and ``ratio_min`` = our fastest run / theirs,
which other processes on a shared machine disturb least (they only ever slow a run down).

Settings follow the cell: the same artifact, device, thread count, one stream and synchronous
requests (OpenVINO's latency mode, which our backend also runs in), the same inference
precision, the same number of iterations, inference only (no input filling in the loop).
``benchmark_app`` runs from the installed ``openvino`` package with this interpreter;
``trtexec`` from PATH or JetPack's /usr/src/tensorrt/bin. The trtexec path cannot be run on
a machine without TensorRT (this project's CI); it is written to NVIDIA's documented options
and its output format ("Latency: min = ..., median = ... ms").
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from usfm_edge.bench.plan import Cell

TARGET_RATIO = 1.05
_BENCHMARK_APP = ("import sys; from openvino.tools.benchmark.main import main; "
                  "sys.argv[0] = 'benchmark_app'; sys.exit(main())")
_OV_HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}
TIMEOUT_S = 600


def benchmark_app(cell: Cell, *, input_shape: list[int], threads: int | None, device: str, iters: int) -> dict:
    if importlib.util.find_spec("openvino.tools.benchmark") is None:
        return {"tool": "benchmark_app", "skipped": "OpenVINO's benchmark_app is not installed"}
    command = [sys.executable, "-c", _BENCHMARK_APP, "-m", cell.source, "-d", device.upper(), "-api", "sync",
               "-niter", str(iters), "-data_shape", "[" + ",".join(map(str, [1, *input_shape])) + "]",
               "-inference_only", "true"]
    # benchmark_app allows -nthreads only without a hint; one stream is what the latency hint picks
    command += (["-hint", "none", "-nstreams", "1", "-nthreads", str(threads)] if threads else ["-hint", "latency"])
    hint = _OV_HINTS.get(cell.result.get("float_precision") or "")
    if hint and cell.precision != "int8":
        command += ["-infer_precision", hint]
    return _run("benchmark_app", command, _parse_benchmark_app)


def trtexec(cell: Cell, *, input_shape: list[int], threads: int | None, device: str, iters: int) -> dict:
    from usfm_edge.backends.tensorrt_engine import TRTEXEC_PATHS
    from usfm_edge.export.onnx_export import INPUT

    tool = next((found for p in TRTEXEC_PATHS if (found := shutil.which(p) or (p if Path(p).is_file() else None))),
                None)
    if tool is None:
        return {"tool": "trtexec", "skipped": "trtexec not found (JetPack: /usr/src/tensorrt/bin/trtexec)"}
    shape = "x".join(map(str, [1, *input_shape]))
    command = [tool, f"--onnx={cell.source}", f"--shapes={INPUT}:{shape}", f"--iterations={iters}", "--warmUp=200",
               "--duration=0", "--useSpinWait"]
    command += ["--stronglyTyped"] if cell.precision == "int8" else ["--fp16"] if cell.precision == "fp16" else []
    return _run("trtexec", command, _parse_trtexec)


# backend -> its vendor's tool
TOOLS: dict[str, Callable[..., dict]] = {"openvino": benchmark_app, "tensorrt": trtexec}


def compare(cell: Cell, **kwargs) -> dict | None:
    """Run the backend's vendor tool on the cell's artifact; None when the backend has none."""
    tool = TOOLS.get(cell.backend)
    if tool is None or cell.model_dir is not None:
        return None
    result = tool(cell, **kwargs)
    latency = cell.result.get("latency") or {}
    if "median_ms" in result and latency:
        result.update(ours_p50_ms=latency["p50_ms"], ours_min_ms=latency["min_ms"],
                      ratio=latency["p50_ms"] / result["median_ms"])
        result["ratio_min"] = latency["min_ms"] / result["min_ms"] if result.get("min_ms") else None
        result["within_target"] = result["ratio"] <= TARGET_RATIO
    return result


def _run(tool: str, command: list[str], parse: Callable[[str], tuple[float, float | None] | None]) -> dict:
    shown = [tool] + command[3:] if command[0] == sys.executable else command
    try:
        done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"tool": tool, "command": shown, "error": f"{type(exc).__name__}: {exc}"}
    figures = parse(done.stdout + done.stderr)
    if done.returncode != 0 or figures is None:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"tool": tool, "command": shown, "error": f"exit {done.returncode}: {tail[0]}"}
    return {"tool": tool, "command": shown, "median_ms": figures[0], "min_ms": figures[1]}


_UNITS = {"ms": 1.0, "us": 1e-3, "s": 1e3}


def _parse_benchmark_app(text: str) -> tuple[float, float | None] | None:
    """(median, min) in ms from ``[ INFO ]    Median:        229.05 us`` / ``Min: ...`` under ``Latency:``."""
    figures = {}
    for name in ("Median", "Min"):
        match = re.search(rf"{name}:\s+([\d.]+)\s*(ms|us|s)\b", text)
        figures[name] = float(match.group(1)) * _UNITS[match.group(2)] if match else None
    return None if figures["Median"] is None else (figures["Median"], figures["Min"])


def _parse_trtexec(text: str) -> tuple[float, float | None] | None:
    """(median, min) in ms from ``Latency: min = 1.2 ms, max = 2.0 ms, mean = 1.3 ms, median = 1.25 ms, ...``"""
    match = re.search(r"Latency: min = ([\d.]+) ms.*?median = ([\d.]+) ms", text)
    return (float(match.group(2)), float(match.group(1))) if match else None
