"""Shared by the deployment benchmarks (``headline``, ``bench_sizes``): freshly initialised
model directories for speed-only figures, calibration frames, the GPU check, the peak each
cell is measured against, and the markdown table helper.

Untrained weights time exactly like trained ones (same graph, same shapes; dense kernels do
not skip zeros), so latency, memory and operations per second are real figures; their task
metric is meaningless and these scripts never report one for them."""

from __future__ import annotations

import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_CALIB = ROOT.parent / "shared" / "data" / "hc18_unlabeled"
LABELS = ["background", "foreground"]


def untrained_model_dir(architecture: str, out: Path, *, img_size: int, head: str | None = None, seed: int = 0) -> Path:
    """A segmentation model directory with freshly initialised weights, marked as such in its
    provenance."""
    import torch

    from usfm_edge.models import build_task_model, make_config, save_model_dir

    torch.manual_seed(seed)
    config = make_config(architecture, "seg", labels=LABELS, img_size=img_size, head=head,
                         provenance={"source": "untrained: random initialisation for speed-only benchmarks"})
    return save_model_dir(build_task_model(config), out)


def calibration_folder(given: Path | None, scratch: Path, *, size: int, n: int = 64) -> Path:
    """``given``, else the shared real unlabeled ultrasound frames, else phantom frames."""
    if given is not None:
        return given
    if SHARED_CALIB.is_dir():
        return SHARED_CALIB
    from usfm_edge.data.phantom import PhantomConfig
    from usfm_edge.data.phantom_datasets import write_phantom_dataset

    return write_phantom_dataset("seg", scratch / "calib", n=n, config=PhantomConfig(size=(size, size)))


def gpu_device() -> str | None:
    """A description of the GPU when there is one to benchmark on, else None."""
    from usfm_edge.bench.machine import gpu

    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return gpu()


def model_gmacs(model_dir: Path) -> tuple[float, float]:
    """(G multiply-accumulates per frame, M parameters) of a model directory."""
    from usfm_edge.models import load_model_dir
    from usfm_edge.train.distill import macs

    model = load_model_dir(model_dir)
    return macs(model, model.config.preprocess), round(sum(p.numel() for p in model.parameters()) / 1e6, 2)


def merge_rounds(docs: list[dict]) -> list[dict]:
    """The cells of several ``run_bench`` rounds on the same target, one per cell: medians of
    the rounds' p50/p90/p99/mean/fps and load time, the fastest run of all, the largest peak
    memory, the first vendor comparison. A burst of other work on a shared machine then
    spoils one round, not the figure."""
    merged = []
    for i, first in enumerate(docs[0]["cells"]):
        ok = [doc["cells"][i] for doc in docs if doc["cells"][i]["status"] == "ok"]
        if not ok:
            merged.append(first)
            continue
        cell = dict(ok[0])
        latency = {key: statistics.median(c["latency"][key] for c in ok)
                   for key in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "fps")}
        latency.update(batch=1, iters=sum(c["latency"]["iters"] for c in ok), min_ms=min(c["latency"]["min_ms"]
                                                                                         for c in ok))
        cell.update(latency=latency, load_s=statistics.median(c["load_s"] for c in ok),
                    peak_rss_mb=max(c["peak_rss_mb"] for c in ok), rounds_p50_ms=[c["latency"]["p50_ms"] for c in ok],
                    vendor=next((c["vendor"] for c in ok if c["vendor"]), None))
        merged.append(cell)
    return merged


def peak_kind(cell: dict) -> str:
    """Which measured peak a cell is held to: int8 for int8 artifacts, else the float
    precision that actually ran (OpenVINO's fp16 runs in bf16 on CPUs without fp16 units)."""
    if cell["precision"] == "int8":
        return "int8"
    return cell.get("float_precision") or cell.get("runs_in") or cell["precision"]


def markdown(header: list[str], rows: list[list], align: str | None = None) -> list[str]:
    align = align or "|".join("---" if i == 0 else "---:" for i in range(len(header)))
    lines = ["| " + " | ".join(header) + " |", f"|{align}|"]
    lines += ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in rows]
    return lines


def r(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)
