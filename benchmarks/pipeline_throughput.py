"""The runtime against its backend bare, with what a cart shows, for the README:
``usfm-edge bench --pipeline`` on a 224 px INT8 bundle (untrained weights: speed only), at
capture size (a 1920x1080 scanner screen with UI around the image) and at 480x640, for each
sink: ``none:`` (no drawing, no display), ``http:0`` (the browser view with a viewer
connected) and ``video:`` (a recording). Then flicker, with and without EMA, of a trained
bundle (``--flicker-bundle``, e.g. the demo's student) on a phantom cine in scanner UI.

    python -m benchmarks.pipeline_throughput [--bundle B] [--threads 1] [--rounds 3] [--tag cpu]
        [--flicker-bundle usfm-edge-demo/bundles/openvino-int8]

Without ``--bundle`` it builds one: usfm_vit_t16 at 224, OpenVINO INT8 from phantom frames.
Without ``--threads``: the runtime's default (every core but one). Whether other work was
running (load average, training processes) is recorded with the machine: on a shared machine
the ratios measured side by side in each round carry over, absolute fps do not.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
from pathlib import Path

from benchmarks.deploy_common import calibration_folder, untrained_model_dir
from benchmarks.machine import describe
from benchmarks.store import store
from usfm_edge.bench.pipeline import (DEFAULT_SOURCES, bench_pipeline, flicker, flicker_cell, flicker_table,
                                      pipeline_table)
from usfm_edge.runtime.pipeline import default_threads

RESULTS = Path(__file__).parent / "results"
# Other work that makes a measurement "shared": training and export processes, by command line.
BUSY_MARKERS = ("pretrain", "finetune", "distill", "ft.py", "pt.py", "pytest", "usfm-edge demo", "usfm_edge demo",
                "benchmarks.", "usfm-edge bench", "usfm_edge bench")
FLICKER_SOURCE = "phantom:?size=128&canvas=300x400&organ=breast&frames=48&seed=3"  # a 4,400 px lesion


def build_bundle(scratch: Path, *, model: str, size: int) -> Path:
    from usfm_edge.export.exporter import export_bundle

    model_dir = untrained_model_dir(model, scratch / "model", img_size=size)
    calib = calibration_folder(None, scratch, size=size, n=32)
    return export_bundle(model_dir, target="openvino", precision="int8", out=scratch / "bundle", calib=calib,
                         calib_limit=32)


def truth_change(source: str, frames: int) -> float | None:
    """How much the phantom's true lesion mask itself changes from frame to frame (the
    tissue's motion): the floor no smoothing should go below. Pooled like ``mask_change``."""
    if not source.startswith("phantom:"):
        return None
    from usfm_edge.runtime.sources import open_source

    phantom = open_source(f"{source}&fps=0&frames={frames}")
    phantom.open()
    masks = [m[::2, ::2] > 0 for m in phantom.truth]
    changed = sum(int((a ^ b).sum()) for a, b in zip(masks, masks[1:]))
    union = sum(int((a | b).sum()) for a, b in zip(masks, masks[1:]))
    return changed / union if union else 0.0


SCALING_PROBE = """
import os, sys, time
os.environ["OMP_NUM_THREADS"] = os.environ["OPENBLAS_NUM_THREADS"] = "1"
import numpy as np
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {int(sys.argv[1])})
a = np.random.default_rng(0).random((512, 512))
start, n = time.perf_counter(), 0
while time.perf_counter() - start < 3.0:
    a @ a
    n += 1
print(n / 3.0)
"""


def parallel_scaling() -> dict[str, float] | None:
    """What a second core adds here: one single-threaded matmul process alone on core 0, then
    one on each of cores 0 and 1 at once. Each at ~1.0x of alone: two real cores; ~0.5x: the
    two share one core's worth of compute (SMT siblings, or a host that time-slices them),
    and every millisecond the pipeline spends beside inference is taken from it."""
    import subprocess
    import sys

    if not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2:
        return None
    cores = sorted(os.sched_getaffinity(0))[:2]

    def probe(*which: int) -> list[float]:
        runs = [subprocess.Popen([sys.executable, "-c", SCALING_PROBE, str(c)], stdout=subprocess.PIPE, text=True)
                for c in which]
        return [float(r.communicate()[0]) for r in runs]

    (alone,) = probe(cores[0])
    both = probe(*cores)
    return {"alone_per_s": alone, "together_per_s": both, "each_of_alone": min(both) / alone}


def work_beside_inference(bundle: Path, source: str, *, threads: int, repeats: int = 50) -> dict[str, float]:
    """CPU milliseconds per frame of what the runtime does besides inference, each stage
    alone on one thread (``time.thread_time``), on the source's first frame with a lesion-
    sized mask: where the second core cannot take this work, it bounds the pipeline at
    infer / (infer + work) of the bare backend."""
    import time

    import cv2
    import numpy as np

    from usfm_edge.backends.bundle import load_bundle
    from usfm_edge.contracts.region import RegionTracker
    from usfm_edge.runtime.overlay import draw_result
    from usfm_edge.runtime.postprocess import PostConfig, make_postprocessor
    from usfm_edge.runtime.sources import open_source

    model = load_bundle(bundle, threads=threads)
    phantom = open_source(f"{source}&fps=0&frames=1" if source.startswith("phantom:") else source)
    phantom.open()
    frame = phantom.read()
    phantom.close()
    tracker = RegionTracker(crop=True, sector=model.spec.mask_sector)
    post = make_postprocessor(model.task, model.spec, model.labels, PostConfig(ema=0.5))
    views = tracker.update(frame.image)
    crops = [v.crop(frame.image) for v in views]
    x = model.preprocess(crops)
    raw = model.infer(x).copy()
    h, w = raw.shape[-2:]
    raw[0, 1], raw[0, 1, h // 3:h // 2, w // 3:w // 2] = -5.0, 5.0  # a lesion a few per cent of the image
    out = post(raw[0], views[0], crops[0], 0)
    overlay = draw_result(frame.image, [views[0].box], [out])

    def cpu_ms(fn) -> float:
        fn()
        start = time.thread_time()
        for _ in range(repeats):
            fn()
        return (time.thread_time() - start) / repeats * 1000.0

    stages = {"region_and_crop": cpu_ms(lambda: [v.crop(frame.image) for v in tracker.update(frame.image)]),
              "preprocess": cpu_ms(lambda: model.preprocess(crops)),
              "postprocess": cpu_ms(lambda: post(raw[0], views[0], crops[0], 0)),
              "overlay": cpu_ms(lambda: draw_result(frame.image, [views[0].box], [out])),
              "jpeg": cpu_ms(lambda: cv2.imencode(".jpg", cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR),
                                                  [cv2.IMWRITE_JPEG_QUALITY, 80])),
              "infer": cpu_ms(lambda: model.infer(x))}
    beside = sum(v for k, v in stages.items() if k not in ("infer", "jpeg"))
    return {**stages, "beside_without_display": beside, "beside_with_display": beside + stages["jpeg"],
            "one_core_ceiling_none": stages["infer"] / (stages["infer"] + beside),
            "one_core_ceiling_display": stages["infer"] / (stages["infer"] + beside + stages["jpeg"])}


def other_work() -> list[str]:
    """Command lines of other processes that compete for the CPU (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if any(marker in command for marker in BUSY_MARKERS) and "benchmarks.pipeline_throughput" not in command:
            found.append(command[:160])
    return found


def describe_bundle(bundle: Path) -> str:
    """The model a given bundle holds, from its manifest (its weights may be trained or not)."""
    import json

    manifest = json.loads((bundle / "manifest.json").read_text())
    size = manifest["io"]["input"]["shape"][-1]
    return f"{manifest.get('source', {}).get('architecture', bundle.name)} at {size} ({bundle.name})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path)
    parser.add_argument("--model", default="usfm_vit_t16")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--threads", type=int, help="inference threads (default: the runtime's, every core but one)")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of (bare, pipeline); medians reported")
    parser.add_argument("--sink", action="append", dest="sinks",
                        help="repeatable (default: none:, http:0 with a viewer, video:TMP/bench.avi)")
    parser.add_argument("--source", action="append", dest="sources", help="repeatable (default: the 1080p and the "
                        "480x640 phantom screens)")
    parser.add_argument("--flicker-bundle", type=Path, help="a trained segmentation bundle for the flicker figures")
    parser.add_argument("--flicker-source", default=FLICKER_SOURCE)
    parser.add_argument("--flicker-frames", type=int, default=48)
    parser.add_argument("--tag", default="cpu")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--render", type=Path, help="only write the table again from a stored JSON result")
    args = parser.parse_args()
    if args.render is not None:
        import json

        result = json.loads(args.render.read_text())
        store(args.out / f"pipeline_display_{args.tag}", result, render(result))
        return
    busy_before = other_work()
    scaling = parallel_scaling()
    with tempfile.TemporaryDirectory() as tmp:
        sinks = tuple(args.sinks or ("none:", "http:0", f"video:{Path(tmp) / 'bench.avi'}"))
        bundle = args.bundle or build_bundle(Path(tmp), model=args.model, size=args.size)
        result = bench_pipeline(bundle, sources=tuple(args.sources or DEFAULT_SOURCES), sinks=sinks, threads=args.threads,
                                frames=args.frames, fps=args.fps, rounds=args.rounds, flicker_frames=args.flicker_frames,
                                bare_all_cores=True, progress=print)
        result["work_beside_inference"] = {src: work_beside_inference(bundle, src, threads=result["threads"])
                                           for src in args.sources or DEFAULT_SOURCES}
        if args.flicker_bundle is not None:
            from usfm_edge.backends.bundle import load_bundle

            threads = args.threads or default_threads()
            trained = load_bundle(args.flicker_bundle, threads=threads)
            result["flicker_trained"] = {"bundle": str(args.flicker_bundle), "source": args.flicker_source,
                                         "frames": args.flicker_frames,
                                         "truth": truth_change(args.flicker_source, args.flicker_frames),
                                         **flicker(trained, args.flicker_bundle, args.flicker_source, threads=threads,
                                                   frames=args.flicker_frames)}
    busy = sorted(set(busy_before) | set(other_work()))
    result.update(machine={**describe(), "other_work": busy, "shared": bool(busy), "parallel_scaling": scaling},
                  date=dt.date.today().isoformat(), fps_paced=args.fps,
                  model=(describe_bundle(args.bundle) if args.bundle else f"{args.model} at {args.size}")
                  + " (untrained weights: speed only)" * (args.bundle is None))
    store(args.out / f"pipeline_display_{args.tag}", result, render(result))


def render(result: dict) -> list[str]:
    machine, scaling, busy = result["machine"], result["machine"].get("parallel_scaling"), result["machine"]["other_work"]
    shared = ("shared with other work (" + "; ".join(busy)[:300] + "): ratios side by side in each round carry over, "
              "absolute fps do not") if busy else "no other training or test process running"
    header = (f"Pipeline vs bare backend with each sink: {result['backend']} {result['precision']} "
              f"({result['artifact']}), {result['threads']} inference threads"
              f"{' + prepare thread' if result['prepare_thread'] else ''}, {result['frames']} frames, paced run at "
              f"{result.get('fps_paced', 30):g} fps, medians of {result['rounds']} rounds; {result['model']}; "
              f"{machine['cpu']}, {machine['usable_cores']} usable cores, load average {machine['load_average_1m']} "
              f"at start; {shared} ({result['date']})")
    if scaling:
        header += (f". Two single-threaded matmul processes, one per core, each ran at "
                   f"{scaling['each_of_alone']:.2f}x of one alone ({scaling['alone_per_s']:.0f}/s alone)"
                   + (": the cores share one core's worth of compute, so what the pipeline does beside inference "
                      "is taken from it" if scaling["each_of_alone"] < 0.75 else ""))
    rows = pipeline_table(result)
    bare = ["", "Bare backend on every core (what inference alone could do with the whole machine):", "",
            "| source | bare fps, pipeline's threads | bare fps, every core |", "|---|---:|---:|"]
    for r in result["sources"]:
        bare.append(f"| `{r['source']}` | {r['bare']['fps']:.1f} | {r['bare'].get('all_cores_fps', float('nan')):.1f} |")
    stages = ["", "Stage p50 / p99 (ms) in the throughput run:", "",
              "| source | sink | preprocess | infer | postprocess | overlay | sink | viewer fps |",
              "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in result["sources"]:
        for s in r["sinks"]:
            st = s["throughput"]["stages"]
            cells = " | ".join(f"{st.get(k, {}).get('p50_ms', float('nan')):.2f} / "
                               f"{st.get(k, {}).get('p99_ms', float('nan')):.2f}"
                               for k in ("preprocess", "infer", "postprocess", "overlay", "sink"))
            viewer = s["throughput"].get("viewer")
            stages.append(f"| `{r['source']}` | `{s['sink']}` | {cells} | "
                          + (f"{viewer['fps']:.1f} |" if viewer else "- |"))
    glass = ["", "Glass-to-glass estimate in the paced run (runtime's measured part + one source frame + one 60 Hz "
             "refresh):", "", "| source | sink | measured | p50 (ms) | estimate p50 (ms) | estimate p99 (ms) |",
             "|---|---|---|---:|---:|---:|"]
    for r in result["sources"]:
        for s in r["sinks"]:
            g = s["paced"].get("glass_to_glass")
            if g:
                glass.append(f"| `{r['source']}` | `{s['sink']}` | {g['measured']} | {g['p50_ms']:.1f} | "
                             f"{g['estimate_p50_ms']:.1f} | {g['estimate_p99_ms']:.1f} |")
    flick = ["", "Flicker (1 - IoU of consecutive masks) of the benchmark bundle (untrained: masks may be empty):",
             "", *flicker_table(result)]
    if "flicker_trained" in result:
        f = result["flicker_trained"]
        flick += ["", f"Flicker of a trained bundle ({f['bundle']}) over {f.get('frames', 48)} frames of "
                  f"`{f['source']}`, a held probe (tremor and breathing):", "",
                  "| --ema | mask change: pooled (pair mean / p95) | pairs |", "|---:|---:|---:|"]
        for key in ("ema_1", "ema_0.5"):
            v = f.get(key, {})
            flick.append(f"| {key.removeprefix('ema_')} | {flicker_cell(v)} | {v.get('mask_pairs', 0)} |")
        if f.get("truth") is not None:
            flick.append(f"| (the true lesion's own change: tissue motion) | {100 * f['truth']:.2f} % | |")
    work = ["", "CPU per frame of each stage alone on one thread (ms), and the bound it sets where the second core "
            "adds nothing: infer / (infer + the rest), without and with the JPEG of the browser view:", "",
            "| source | region + crop | preprocess | postprocess | overlay | JPEG | infer | bound, none: | "
            "bound, display |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for src, w in result.get("work_beside_inference", {}).items():
        work.append(f"| `{src}` | " + " | ".join(f"{w[k]:.2f}" for k in ("region_and_crop", "preprocess", "postprocess",
                                                                        "overlay", "jpeg", "infer"))
                    + f" | {100 * w['one_core_ceiling_none']:.0f} % | {100 * w['one_core_ceiling_display']:.0f} % |")
    return [header, "", *rows, *bare, *stages, *work, *glass, *flick]


if __name__ == "__main__":
    main()
