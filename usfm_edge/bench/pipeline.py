"""The pipeline benchmark: the whole runtime (capture, crop, preprocess, infer, postprocess,
overlay, sink) against the same backend bare, on the same bundle and frames, side by side.

Two runs per source:
- throughput: frames handed over as fast as they are taken (a replay), so the pipeline's
  output fps compares with the bare backend's inferences per second (target >= 95 %: the
  other stages overlap inference on their own threads);
- latency: the source paced at ``fps`` (30 by default, a scanner's rate) with the
  newest-frame policy, where capture-to-result p99 should stay within 1.5x its p50.
Torch-free, like the runtime it measures.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from usfm_edge.backends.bundle import load_bundle
from usfm_edge.bench.cell import latency_stats, timed
from usfm_edge.contracts.prepare import locate
from usfm_edge.runtime.app import RunOptions, build_pipeline
from usfm_edge.runtime.sources import open_source

# A capture card's 1080p screen with scanner UI around 256 px phantom frames, and a small one.
DEFAULT_SOURCES = ("phantom:?size=256&canvas=1080x1920&frames=16", "phantom:?size=256&canvas=480x640&frames=16")
STAGES = ("crop", "preprocess", "infer", "postprocess", "overlay", "sink", "capture_to_output", "capture_to_sink")


def _with(uri: str, **params: Any) -> str:
    extra = "&".join(f"{k}={v}" for k, v in params.items())
    return f"{uri}{'&' if '?' in uri else '?'}{extra}"


def bare_backend(model, source: str, *, iters: int, warmup: int) -> dict[str, float]:
    """Inference alone on the source's first frame, cropped and preprocessed once."""
    src = open_source(_with(source, fps=0, frames=1) if source.startswith("phantom:") else source)
    src.open()
    frame = src.read()
    src.close()
    x = model.preprocess([locate(frame.image, model.spec).crop(frame.image)])
    timed(model.infer, x, warmup)
    return latency_stats(timed(model.infer, x, iters), batch=1)


def _stages(report: dict) -> dict[str, dict]:
    return {k: {m: round(v, 3) for m, v in report["stages"][k].items() if m.endswith("_ms")}
            for k in STAGES if k in report["stages"]}


def bench_pipeline(bundle: str | Path, *, sources: tuple[str, ...] = DEFAULT_SOURCES, backend: str = "auto",
                   threads: int | None = None, frames: int = 300, fps: float = 30.0, warmup: int = 20,
                   sink: str = "none:", rounds: int = 1) -> dict[str, Any]:
    """Per source, ``rounds`` rounds of (bare, throughput run, paced run); each figure is the
    median over the rounds, and "of bare" the median of the rounds' own ratios, so a burst of
    other work on a shared machine spoils one round, not the figure."""
    model = load_bundle(bundle, backend=backend, threads=threads)
    results = []
    for source in sources:
        measured = [_round(model, bundle, source, threads=threads, frames=frames, fps=fps, warmup=warmup, sink=sink)
                    for _ in range(rounds)]
        # stage times and counters from the round nearest the median
        middle = _median(measured, "of_bare")
        bare, unpaced, paced = min(measured, key=lambda m: abs(m["of_bare"] - middle))["runs"]
        results.append({
            "source": source, "bare": {**bare, "fps": _median(measured, "bare_fps")},
            "throughput": {"fps": _median(measured, "fps"), "of_bare": _median(measured, "of_bare"),
                           "stages": _stages(unpaced)},
            "paced": {"source_fps": fps, "fps_out": paced["fps_out"], "dropped": paced["dropped"],
                      "p50_ms": _median(measured, "p50_ms"), "p99_ms": _median(measured, "p99_ms"),
                      "p99_over_p50": _median(measured, "p99_over_p50"), "stages": _stages(paced)},
            "rounds": [{k: round(v, 3) for k, v in m.items() if k != "runs"} for m in measured],
        })
    return {"bundle": str(bundle), "backend": model.backend, "artifact": model.artifact.file,
            "precision": model.session.precision, "threads": threads, "sink": sink, "frames": frames,
            "rounds": rounds, "sources": results}


def _round(model, bundle, source: str, *, threads, frames: int, fps: float, warmup: int, sink: str) -> dict:
    bare = bare_backend(model, source, iters=frames, warmup=warmup)
    unpaced = build_pipeline(RunOptions(bundle=Path(bundle), source=_with(source, fps=0, loop=1), sinks=[sink],
                                        threads=threads, max_frames=frames), model=model).run()
    paced = build_pipeline(RunOptions(bundle=Path(bundle), source=_with(source, fps=fps), sinks=[sink],
                                      threads=threads, max_frames=int(max(60, frames // 2))), model=model).run()
    latency = paced["stages"]["capture_to_sink"]
    return {"bare_fps": bare["fps"], "fps": unpaced["fps_out"], "of_bare": unpaced["fps_out"] / bare["fps"],
            "p50_ms": latency["p50_ms"], "p99_ms": latency["p99_ms"],
            "p99_over_p50": latency["p99_ms"] / latency["p50_ms"], "runs": (bare, unpaced, paced)}


def _median(rounds: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rounds)


def pipeline_table(result: dict[str, Any]) -> list[str]:
    """Markdown rows: one per source."""
    rows = ["| source | bare fps | pipeline fps | of bare | paced p50 (ms) | p99 (ms) | p99/p50 | dropped |",
            "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in result["sources"]:
        rows.append(f"| `{r['source']}` | {r['bare']['fps']:.1f} | {r['throughput']['fps']:.1f} | "
                    f"{100 * r['throughput']['of_bare']:.0f} % | {r['paced']['p50_ms']:.2f} | "
                    f"{r['paced']['p99_ms']:.2f} | "
                    f"{r['paced']['p99_over_p50']:.2f} | {r['paced']['dropped']['total']} |")
    return rows
