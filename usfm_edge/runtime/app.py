"""Assemble a pipeline from names: what ``usfm-edge run``, the pipeline benchmark and the demo
share. Everything here is torch-free."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from usfm_edge.backends.bundle import BundleModel, load_bundle
from usfm_edge.contracts import Crop
from usfm_edge.contracts.region import Box, RegionTracker
from usfm_edge.errors import InputError
from usfm_edge.runtime.metrics import RunMetrics
from usfm_edge.runtime.pipeline import Pipeline, PipelineConfig, default_threads, set_cpu_threads, spare_core
from usfm_edge.runtime.postprocess import PostConfig, make_postprocessor
from usfm_edge.runtime.sinks import SinkContext, open_sink
from usfm_edge.runtime.sources import SourceOptions, open_source


@dataclass
class RunOptions:
    bundle: Path
    source: str = "phantom:"
    sinks: list[str] = field(default_factory=lambda: ["none:"])
    backend: str = "auto"
    precision: str | None = None
    device: str = "CPU"
    threads: int | None = None  # None: every core this process may use but one (``default_threads``)
    max_frames: int | None = None
    realtime: bool = False
    loop: bool = False
    roi: Box | None = None
    region: int | str = 0  # which source region (DICOM), or "all"
    redetect_every: int = 30
    ema: float | None = None  # None: 0.5 for streams, 1 (no smoothing) for stills
    max_backend_errors: int = 10
    engine_cache: Path | None = None


def parse_roi(text: str | None) -> Box | None:
    if not text:
        return None
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"--roi {text!r}: give x,y,w,h in pixels, e.g. --roi 320,120,1280,860") from None
    if w <= 0 or h <= 0 or x < 0 or y < 0:
        raise InputError(f"--roi {text!r}: x, y must be >= 0 and w, h > 0")
    return x, y, w, h


def parse_region(text: str | int) -> int | str:
    if isinstance(text, int) or text == "all":
        return text
    if not str(text).isdigit():
        raise InputError(f"--region {text!r}: give a region index (0, 1, ...) or 'all'")
    return int(text)


def build_pipeline(options: RunOptions, *, model: BundleModel | None = None, metrics: RunMetrics | None = None,
                   capture_factory=None) -> Pipeline:
    """The source and sinks are checked (URI options, writable folders) before the bundle
    is loaded, so a typo fails in a second rather than after a model compile."""
    threads = options.threads or default_threads()
    source = open_source(options.source, SourceOptions(realtime=options.realtime, loop=options.loop,
                                                       capture_factory=capture_factory))
    metrics = metrics or RunMetrics()
    context = SinkContext(fps=source.fps or 30.0, stats=metrics.report, record=metrics.time)
    sinks = []
    try:
        for uri in options.sinks:
            sinks.append(open_sink(uri, context))
        set_cpu_threads(threads)
        model = model or load_bundle(options.bundle, backend=options.backend, precision=options.precision,
                                     threads=threads, device=options.device, cache_dir=options.engine_cache)
    except BaseException:
        for sink in sinks:
            sink.close()
        raise
    context.labels, context.task = tuple(model.labels), model.task
    # A folder of stills is a set of unrelated screens: each is located on its own, exactly as
    # the export gate located it, and none is smoothed with its neighbour.
    ema = options.ema if options.ema is not None else 1.0 if source.stills else 0.5
    post = make_postprocessor(model.task, model.spec, model.labels, PostConfig(ema=ema))
    tracker = RegionTracker(roi=options.roi, pick=options.region,
                            redetect_every=1 if source.stills else options.redetect_every,
                            min_change=0.0 if source.stills else 0.05,
                            crop=model.spec.crop is Crop.SCAN_REGION or options.roi is not None,
                            sector=model.spec.mask_sector)
    config = PipelineConfig(max_frames=options.max_frames, max_backend_errors=options.max_backend_errors,
                            prepare_thread=spare_core(threads))
    return Pipeline(source, model, post, tracker, sinks, config, metrics=metrics)
