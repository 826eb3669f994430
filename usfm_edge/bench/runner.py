"""``run_bench``: plan the cells, measure each in its own process, then score every cell's
outputs against the reference's on the same frames.

The frames: the ``--val`` split when given (the task metric is computed on them, on each
frame's own grid, by the export gate's ``score``), else the bundle's golden input, else one
seeded random frame. Every cell runs every frame at batch 1 and saves its outputs; parity is
the export gate's ``parity`` (max and mean absolute error, max error relative to the
reference's largest magnitude) against the reference: the fp32 torch model when its model
directory is at hand, else the bundle's ``model.onnx`` on ONNX Runtime fp32. When the
reference is not one of the requested cells it runs once more in its own process, untimed.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from usfm_edge._version import __version__
from usfm_edge.bench import vendor
from usfm_edge.bench.machine import describe
from usfm_edge.bench.plan import (
    PORTABLE_REFERENCE,
    PRECISIONS,
    REFERENCE,
    Cell,
    BenchTarget,
    Status,
    check_names,
    inspect_target,
    plan_bundle,
    plan_model_dir,
)
from usfm_edge.backends import available_backends, list_backends
from usfm_edge.contracts import Backend
from usfm_edge.errors import InputError
from usfm_edge.metrics import validation

BENCH_SCHEMA = "usfm-edge/bench"
BENCH_SCHEMA_VERSION = 1
DEFAULT_BACKENDS = tuple(Backend.values())
DEFAULT_PRECISIONS = PRECISIONS


def run_bench(target: str | Path, *, backends: list[str] | tuple[str, ...] = DEFAULT_BACKENDS,
              precisions: list[str] | tuple[str, ...] = DEFAULT_PRECISIONS, threads: int | None = None,
              warmup: int = 5, iters: int = 50, batch_size: int = 1, val: str | Path | None = None,
              val_limit: int = 200, calib: str | Path | None = None, calib_limit: int = 300,
              work: str | Path | None = None, device: str = "CPU", vendor_tools: bool = True,
              progress: Callable[[str], None] = lambda _msg: None) -> dict[str, Any]:
    """Measure every backend x precision of ``target`` (a bundle or a model directory) and
    return the result document (see ``usfm_edge.bench`` for its structure)."""
    backends, precisions = list(backends), list(precisions)
    check_names(backends, precisions)
    if iters < 1 or warmup < 0 or batch_size < 1 or (threads is not None and threads < 1):
        raise InputError("--iters and --batch-size must be >= 1, --warmup >= 0, --threads >= 1")
    info = inspect_target(target)
    with tempfile.TemporaryDirectory(prefix="usfm-bench-") as tmp:
        tmp = Path(tmp)
        work_dir = Path(work) if work is not None else tmp / "bundles"
        if info.kind == "bundle":
            cells = plan_bundle(info, backends, precisions)
        else:
            cells = plan_model_dir(info, backends, precisions, work=work_dir, calib=Path(calib) if calib else None,
                                   val=Path(val) if val else None, calib_limit=calib_limit, threads=threads,
                                   progress=progress)
        valset = (validation.load_val(val, info.task, info.spec, num_classes=info.num_classes, limit=val_limit)
                  if val is not None else None)
        inputs = valset.inputs if valset is not None else default_inputs(info, cells)
        np.save(tmp / "inputs.npy", np.ascontiguousarray(inputs, dtype=np.float32))
        reference = reference_cell(info, cells)
        settings = {"threads": threads, "device": device, "warmup": warmup, "iters": iters, "batch_size": batch_size}
        queue = ([] if reference in cells else [reference]) + [c for c in cells if c.runnable]
        for i, cell in enumerate(queue):
            timed = cell in cells
            progress(f"[{i + 1}/{len(queue)}] {cell.backend} {cell.precision}: {cell.source}"
                     + ("" if timed else " (reference, untimed)"))
            measure_in_process(cell, tmp / f"cell{i}", {**settings, "iters": iters if timed else 0},
                               inputs=tmp / "inputs.npy")
            if vendor_tools and timed and cell.status is Status.OK:
                # right after our own timing, so that both see the same load on a shared machine
                result = vendor.compare(cell, input_shape=[info.spec.channels, *info.spec.input_size],
                                        threads=threads, device=device, iters=iters)
                if result is not None:
                    progress(f"{result['tool']} on {cell.backend} {cell.precision}: "
                             + (f"ours / theirs {result['ratio']:.3f}" if "ratio" in result else
                                result.get("skipped") or result.get("error", "")))
                    cell.result["vendor"] = result
        reference_value = score_cells(cells, reference, valset, info)
    return document(info, cells, reference, reference_value, valset, work_dir if info.kind == "model_dir" and work
                    else None, settings={**settings, "backends": backends, "precisions": precisions,
                                         "val": str(val) if val else None, "vendor_tools": vendor_tools})


def default_inputs(info: BenchTarget, cells: list[Cell]) -> np.ndarray:
    """(N, C, H, W): a bundle's golden input (the target's, else an exported variant's), else a
    seeded random frame."""
    bundles = ([info.path] if info.kind == "bundle" else []) + [c.bundle for c in cells if c.bundle is not None]
    for bundle in bundles:
        golden = bundle / "golden_input.npy"
        if golden.is_file():
            return np.load(golden)
    return np.random.default_rng(0).standard_normal((1, info.spec.channels, *info.spec.input_size)).astype(np.float32)


def reference_cell(info: BenchTarget, cells: list[Cell]) -> Cell:
    if info.model_dir is not None and REFERENCE[0] in available_backends():
        reference = Cell(*REFERENCE, model_dir=info.model_dir)
    elif info.kind == "bundle":
        name, precision, file = PORTABLE_REFERENCE
        reference = Cell(name, precision, bundle=info.path, artifact=file)
    else:  # a model directory without torch cannot be exported either; unreachable in practice
        raise InputError(f"{info.path}: the fp32 reference needs torch (pip install 'usfm-edge[train]')")
    for cell in cells:
        if cell.runnable and (cell.backend, cell.precision, cell.source) == (reference.backend, reference.precision,
                                                                            reference.source):
            return cell
    return reference


def measure_in_process(cell: Cell, stem: Path, settings: dict, *, inputs: Path) -> None:
    """Run ``usfm_edge.bench.cell`` for ``cell`` and store its result (outputs at ``stem``.npy)."""
    spec = {"backend": cell.backend, "precision": cell.precision, "inputs": str(inputs),
            "outputs": str(stem.with_suffix(".npy")), **settings,
            "bundle": str(cell.bundle) if cell.bundle else None, "artifact": cell.artifact,
            "model_dir": str(cell.model_dir) if cell.model_dir else None}
    spec_path, result_path = stem.with_suffix(".spec.json"), stem.with_suffix(".result.json")
    spec_path.write_text(json.dumps(spec))
    done = subprocess.run([sys.executable, "-m", "usfm_edge.bench.cell", str(spec_path), str(result_path)],
                          check=False, capture_output=True, text=True)
    if result_path.is_file():
        result = json.loads(result_path.read_text())
    else:
        why = (f"killed by signal {-done.returncode}" + (" (out of memory?)" if done.returncode == -9 else "")
               if done.returncode < 0 else f"exited with status {done.returncode}")
        tail = done.stderr.strip().splitlines()[-1:] or [""]
        result = {"status": "failed", "reason": f"the cell's process {why} {tail[0]}".strip()}
    cell.status, cell.reason = Status(result.pop("status")), result.pop("reason", None)
    cell.result = {**result, "outputs": str(stem.with_suffix(".npy")) if cell.status is Status.OK else None}


def score_cells(cells: list[Cell], reference: Cell, valset: validation.ValSet | None, info: BenchTarget) -> float | None:
    """Parity and the task metric of every measured cell; returns the reference's metric."""
    ref_out = np.load(reference.result["outputs"]) if reference.status is Status.OK else None
    ref_value = None
    if ref_out is not None and valset is not None:
        ref_value = validation.score(valset, ref_out, info.spec, num_classes=info.num_classes)[0]
    for cell in cells:
        if cell.status is not Status.OK:
            continue
        outputs = np.load(cell.result["outputs"])
        if ref_out is not None and outputs.shape == ref_out.shape:
            cell.result["parity"] = validation.parity(ref_out, outputs)
        if valset is not None:
            value = validation.score(valset, outputs, info.spec, num_classes=info.num_classes)[0]
            cell.result["metric"] = {"name": validation.metric_name(info.task), "value": value,
                                     "drop": None if ref_value is None else ref_value - value}
    return ref_value


CELL_KEYS = ("runs_in", "float_precision", "load_s", "first_run_ms", "latency", "batch", "peak_rss_mb",
             "rss_before_load_mb", "parity", "metric", "vendor")


def cell_record(cell: Cell, *, is_reference: bool) -> dict[str, Any]:
    return {"backend": cell.backend, "precision": cell.precision, "status": cell.status.value,
            "reason": cell.reason, "artifact": cell.source, "reference": is_reference,
            **{key: cell.result.get(key) for key in CELL_KEYS}}


def document(info: BenchTarget, cells: list[Cell], reference: Cell, reference_value: float | None,
             valset: validation.ValSet | None, work: Path | None, *, settings: dict) -> dict[str, Any]:
    return {
        "schema": BENCH_SCHEMA, "schema_version": BENCH_SCHEMA_VERSION, "usfm_edge_version": __version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": describe(),
        "target": {"path": str(info.path), "kind": info.kind, "task": info.task, "labels": info.labels,
                   "input_shape": [info.spec.channels, *info.spec.input_size],
                   "model_dir": str(info.model_dir) if info.model_dir else None,
                   "work": str(work) if work else None},
        "settings": {**settings, "val_frames": len(valset.inputs) if valset is not None else 0,
                     "known_backends": list_backends()},
        "metric": validation.metric_name(info.task) if valset is not None else None,
        "reference": {"backend": reference.backend, "precision": reference.precision, "artifact": reference.source,
                      "status": reference.status.value if reference.status else None, "reason": reference.reason,
                      "metric_value": reference_value},
        "cells": [cell_record(c, is_reference=c is reference) for c in cells],
    }
