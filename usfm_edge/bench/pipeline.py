"""The pipeline benchmark: the whole runtime (capture, crop, preprocess, infer, postprocess,
overlay, display or recording) against the same backend bare, on the same bundle and frames,
side by side.

Per source, in each of ``rounds`` rounds, for each sink: the bare backend right before and right
after a throughput run (the run is compared with their mean), then a paced run:
- throughput: frames handed over as fast as they are taken (a replay), so the pipeline's
  output fps compares with the bare backend's inferences per second (target >= 95 %: the
  other stages overlap inference on their own threads);
- latency: the source paced at ``fps`` (30 by default, a scanner's rate) with the
  newest-frame policy, where capture-to-display p99 should stay within 1.5x its p50.
The default sink is the browser view with a viewer connected (``MjpegViewer``), since what a
cart shows is what a user gets; ``none:`` times the runtime without drawing or display, and
``video:`` a recording. Each figure is the median over the rounds.

Then, once per source, flicker: the frame-to-frame change of the mask over a replay of a held
probe (the phantom's tremor and breathing), with temporal smoothing off (``--ema 1``) and at
the runtime's default. Torch-free, like the runtime it measures.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from usfm_edge.backends.bundle import load_bundle
from usfm_edge.bench.cell import latency_stats, timed
from usfm_edge.bench.viewer import MjpegViewer
from usfm_edge.contracts.prepare import locate
from usfm_edge.errors import UsfmEdgeError
from usfm_edge.runtime.app import RunOptions, build_pipeline
from usfm_edge.runtime.pipeline import Pipeline, default_threads, set_cpu_threads, usable_cores
from usfm_edge.runtime.sources import open_source

# A capture card's 1080p screen with scanner UI around 256 px phantom frames, and a small one.
DEFAULT_SOURCES = ("phantom:?size=256&canvas=1080x1920&frames=16", "phantom:?size=256&canvas=480x640&frames=16")
DEFAULT_SINKS = ("http:0",)  # the browser view, with a viewer connected
STAGES = ("crop", "preprocess", "infer", "postprocess", "overlay", "sink", "capture_to_output", "capture_to_sink",
          "capture_to_display", "capture_to_viewer")
# What "latency" means for a sink: a viewer's socket, the display, or (no display) the sink's hand-over.
LATENCY_STAGES = ("capture_to_viewer", "capture_to_display", "capture_to_sink")
VIEWER_WAIT_S = 5.0
DEFAULT_EMA = 0.5  # the runtime's default for streams (``usfm_edge.runtime.app``)


def _with(uri: str, **params: Any) -> str:
    extra = "&".join(f"{k}={v}" for k, v in params.items())
    return f"{uri}{'&' if '?' in uri else '?'}{extra}"


def _replay(source: str, **params: Any) -> str:
    """The phantom as a replay (``fps=0``), or a file source as it is (replays by default)."""
    return _with(source, fps=0, **params) if source.startswith("phantom:") else source


def bare_backend(model, source: str, *, iters: int, warmup: int) -> dict[str, float]:
    """Inference alone on the source's first frame, cropped and preprocessed once."""
    src = open_source(_replay(source, frames=1) if source.startswith("phantom:") else source)
    src.open()
    try:
        frame = src.read()
    finally:
        src.close()
    x = model.preprocess([locate(frame.image, model.spec).crop(frame.image)])
    timed(model.infer, x, warmup)
    return latency_stats(timed(model.infer, x, iters), batch=1)


@contextlib.contextmanager
def viewers(pipeline: Pipeline) -> Iterator[list[MjpegViewer]]:
    """A reader on every browser-view sink of ``pipeline``, connected before the run starts."""
    with contextlib.ExitStack() as stack:
        readers = [stack.enter_context(MjpegViewer(sink.url)) for sink in pipeline.sinks if sink.scheme == "http"]
        deadline = time.monotonic() + VIEWER_WAIT_S
        http = [sink for sink in pipeline.sinks if sink.scheme == "http"]
        while any(sink.viewers < 1 for sink in http):
            if time.monotonic() > deadline:
                raise UsfmEdgeError("the benchmark's viewer could not connect to the browser view within "
                                    f"{VIEWER_WAIT_S:g} s")
            time.sleep(0.01)
        yield readers


def _stages(report: dict) -> dict[str, dict]:
    return {k: {m: round(v, 3) for m, v in report["stages"][k].items() if m.endswith("_ms")}
            for k in STAGES if k in report["stages"]}


def _latency_stage(report: dict) -> str:
    return next(k for k in LATENCY_STAGES if report["stages"].get(k, {}).get("count"))


def _run(model, bundle, source: str, sink: str, *, threads: int, max_frames: int, ema: float | None = None) -> dict:
    pipeline = build_pipeline(RunOptions(bundle=Path(bundle), source=source, sinks=[sink], threads=threads,
                                         max_frames=max_frames, ema=ema), model=model)
    with viewers(pipeline) as readers:
        report = pipeline.run()
    if readers:
        report["viewer"] = {"frames": readers[0].frames, "fps": readers[0].fps, "bytes": readers[0].bytes}
    return report


def bench_pipeline(bundle: str | Path, *, sources: tuple[str, ...] = DEFAULT_SOURCES,
                   sinks: tuple[str, ...] = DEFAULT_SINKS, backend: str = "auto", threads: int | None = None,
                   frames: int = 300, fps: float = 30.0, warmup: int = 20, rounds: int = 1,
                   flicker_frames: int = 48, bare_all_cores: bool = False,
                   progress: Callable[[str], None] = lambda _msg: None) -> dict[str, Any]:
    """Per source, ``rounds`` rounds of (bare, then a throughput and a paced run per sink);
    each figure is the median over the rounds, and "of bare" the median of the rounds' own
    ratios, so a burst of other work on a shared machine spoils one round, not the figure.
    ``threads`` None: the runtime's default (``default_threads``); the bare backend runs on
    the same threads. ``bare_all_cores`` also times the backend bare on every core, for what
    a machine could do if inference had it to itself."""
    threads = threads or default_threads()
    set_cpu_threads(threads)
    progress(f"loading {bundle} ({backend}, {threads} inference threads)")
    model = load_bundle(bundle, backend=backend, threads=threads)
    everything = load_bundle(bundle, backend=backend, threads=usable_cores()) if bare_all_cores else None
    results = []
    for s, source in enumerate(sources, 1):
        measured = []
        for r in range(1, rounds + 1):
            progress(f"source {s}/{len(sources)}, round {r}/{rounds}: bare backend, then "
                     f"{', '.join(sinks)} ({frames} frames as fast as they come, then paced at {fps:g} fps)")
            measured.append(_round(model, everything, bundle, source, sinks, threads=threads, frames=frames, fps=fps,
                                   warmup=warmup))
        progress(f"source {s}/{len(sources)}: flicker over {flicker_frames} frames, --ema 1 and {DEFAULT_EMA}")
        results.append(_summarise(source, sinks, measured, fps=fps,
                                  flicker=flicker(model, bundle, source, threads=threads, frames=flicker_frames)))
    return {"bundle": str(bundle), "backend": model.backend, "artifact": model.artifact.file,
            "precision": model.session.precision, "threads": threads, "prepare_thread": threads < usable_cores(),
            "usable_cores": usable_cores(), "sinks": list(sinks), "frames": frames, "rounds": rounds,
            "sources": results}


def _round(model, everything, bundle, source: str, sinks: tuple[str, ...], *, threads: int, frames: int, fps: float,
           warmup: int) -> dict:
    """The bare backend is timed right before and right after each sink's throughput run,
    and that run is compared with the mean of the two: on a shared machine a burst of other
    work then weighs on both sides of the ratio."""
    bare = bare_backend(model, source, iters=frames, warmup=warmup)
    out: dict[str, Any] = {"bare": bare, "sinks": {}}
    if everything is not None:
        out["bare_all_cores_fps"] = bare_backend(everything, source, iters=frames, warmup=warmup)["fps"]
    bares = [bare["fps"]]
    for sink in sinks:
        before = bares[-1]
        unpaced = _run(model, bundle, _replay(source, loop=1), sink, threads=threads, max_frames=frames)
        after = bare_backend(model, source, iters=frames, warmup=warmup)["fps"]
        bares.append(after)
        paced = _run(model, bundle, _with(source, fps=fps) if source.startswith("phantom:") else source, sink,
                     threads=threads, max_frames=int(max(60, frames // 2)))
        stage = _latency_stage(paced)
        latency = paced["stages"][stage]
        reference = (before + after) / 2
        out["sinks"][sink] = {"fps": unpaced["fps_out"], "bare_fps": reference,
                              "of_bare": unpaced["fps_out"] / reference,
                              "latency_stage": stage, "p50_ms": latency["p50_ms"], "p99_ms": latency["p99_ms"],
                              "p99_over_p50": latency["p99_ms"] / latency["p50_ms"], "runs": (unpaced, paced)}
    out["bare_fps"] = statistics.median(bares)
    return out


def flicker(model, bundle, source: str, *, threads: int, frames: int) -> dict[str, Any]:
    """Mask change between consecutive frames over a replay, unsmoothed and smoothed."""
    out = {}
    for ema in (1.0, DEFAULT_EMA):
        report = _run(model, bundle, _replay(source, frames=frames) if source.startswith("phantom:") else source,
                      "none:", threads=threads, max_frames=frames, ema=ema)
        out[f"ema_{ema:g}"] = report["flicker"]
    return out


def _median(values) -> float:
    return statistics.median(values)


def _summarise(source: str, sinks: tuple[str, ...], measured: list[dict], *, fps: float,
               flicker: dict[str, Any]) -> dict[str, Any]:
    per_sink = []
    for sink in sinks:
        rounds = [m["sinks"][sink] for m in measured]
        # stage times, drops and the viewer's count from the round nearest the median
        middle = _median(r["of_bare"] for r in rounds)
        unpaced, paced = min(rounds, key=lambda r: abs(r["of_bare"] - middle))["runs"]
        per_sink.append({
            "sink": sink,
            "throughput": {"fps": _median(r["fps"] for r in rounds), "bare_fps": _median(r["bare_fps"] for r in rounds),
                           "of_bare": middle,
                           "dropped": unpaced["dropped"], "stages": _stages(unpaced), "viewer": unpaced.get("viewer"),
                           "sinks": unpaced["sinks"]},
            "paced": {"source_fps": fps, "fps_out": paced["fps_out"], "dropped": paced["dropped"],
                      "latency_stage": rounds[0]["latency_stage"], "p50_ms": _median(r["p50_ms"] for r in rounds),
                      "p99_ms": _median(r["p99_ms"] for r in rounds),
                      "p99_over_p50": _median(r["p99_over_p50"] for r in rounds), "stages": _stages(paced),
                      "glass_to_glass": paced.get("glass_to_glass"), "viewer": paced.get("viewer")},
            "rounds": [{k: round(v, 3) for k, v in r.items() if isinstance(v, float)} for r in rounds],
        })
    bare_fps = _median(m["bare_fps"] for m in measured)
    all_cores = [m["bare_all_cores_fps"] for m in measured if "bare_all_cores_fps" in m]
    return {"source": source, "bare": {"fps": bare_fps, **({"all_cores_fps": _median(all_cores)} if all_cores else {})},
            "sinks": per_sink, "flicker": flicker}


def pipeline_table(result: dict[str, Any]) -> list[str]:
    """Markdown rows: one per source and sink."""
    rows = ["| source | sink | bare fps | pipeline fps | of bare | overlay p50 (ms) | sink p50 (ms) | "
            "paced latency | p50 (ms) | p99 (ms) | p99/p50 | dropped |",
            "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|"]
    for r in result["sources"]:
        for s in r["sinks"]:
            throughput, paced = s["throughput"], s["paced"]
            stages = throughput["stages"]
            rows.append(f"| `{r['source']}` | `{s['sink']}` | {throughput['bare_fps']:.1f} | {throughput['fps']:.1f} | "
                        f"{100 * throughput['of_bare']:.0f} % | {stages.get('overlay', {}).get('p50_ms', 0):.2f} | "
                        f"{stages.get('sink', {}).get('p50_ms', 0):.2f} | {paced['latency_stage']} | "
                        f"{paced['p50_ms']:.2f} | {paced['p99_ms']:.2f} | {paced['p99_over_p50']:.2f} | "
                        f"{paced['dropped']['total']} |")
    return rows


def flicker_cell(f: dict[str, Any]) -> str:
    """Pooled mask change, then the per-pair mean and p95 of 1 - IoU."""
    if "mask_change" not in f:
        return "-"
    return (f"{100 * f['mask_change']:.2f} % ({100 * f['mask_change_pair_mean']:.2f} / "
            f"{100 * f['mask_change_pair_p95']:.2f} %)")


def flicker_table(result: dict[str, Any]) -> list[str]:
    rows = ["| source | mask change, --ema 1: pooled (pair mean / p95) | --ema 0.5 | pairs |", "|---|---:|---:|---:|"]
    for r in result["sources"]:
        cells = [flicker_cell(r["flicker"].get(key, {})) for key in ("ema_1", f"ema_{DEFAULT_EMA:g}")]
        pairs = r["flicker"].get("ema_1", {}).get("mask_pairs", 0)
        rows.append(f"| `{r['source']}` | {cells[0]} | {cells[1]} | {pairs} |")
    return rows
