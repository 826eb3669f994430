"""The runtime against its backend bare, for the README: ``usfm-edge bench --pipeline`` on a
224 px INT8 student bundle (untrained weights: speed only), at capture size (a 1920x1080
scanner screen with UI around the image) and at 480x640.

    python -m benchmarks.pipeline_throughput [--bundle B] [--frames 300] [--threads 2]

Without ``--bundle`` it builds one: usfm_vit_t16 at 224, OpenVINO INT8 from phantom frames.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
from pathlib import Path

from benchmarks.deploy_common import calibration_folder, untrained_model_dir
from benchmarks.machine import describe
from benchmarks.store import store
from usfm_edge.bench.pipeline import DEFAULT_SOURCES, bench_pipeline, pipeline_table

RESULTS = Path(__file__).parent / "results"


def build_bundle(scratch: Path, *, model: str, size: int) -> Path:
    from usfm_edge.export.exporter import export_bundle

    model_dir = untrained_model_dir(model, scratch / "model", img_size=size)
    calib = calibration_folder(None, scratch, size=size, n=32)
    return export_bundle(model_dir, target="openvino", precision="int8", out=scratch / "bundle", calib=calib,
                         calib_limit=32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path)
    parser.add_argument("--model", default="usfm_vit_t16")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of (bare, pipeline); medians reported")
    parser.add_argument("--tag", default="cpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bundle = args.bundle or build_bundle(Path(tmp), model=args.model, size=args.size)
        result = bench_pipeline(bundle, sources=DEFAULT_SOURCES, threads=args.threads, frames=args.frames,
                                fps=args.fps, rounds=args.rounds)
    result.update(machine=describe(), date=dt.date.today().isoformat(),
                  model=f"{args.model} at {args.size} (untrained weights: speed only)" if not args.bundle else None)
    header = (f"Pipeline vs bare backend: {result['backend']} {result['precision']} ({result['artifact']}), "
              f"{args.threads} threads, {args.frames} frames, paced run at {args.fps:g} fps, medians of {args.rounds} "
              f"rounds; {result['model'] or bundle}; "
              f"{result['machine'].get('cpu', '')} ({result['date']})")
    rows = pipeline_table(result)
    stages = ["", "Stage p50 (ms) in the throughput run:", "",
              "| source | crop | preprocess | infer | postprocess | overlay | sink |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in result["sources"]:
        s = r["throughput"]["stages"]
        stages.append(f"| `{r['source']}` | " + " | ".join(f"{s.get(k, {}).get('p50_ms', float('nan')):.2f}" for k in
                                                            ("crop", "preprocess", "infer", "postprocess", "overlay",
                                                             "sink")) + " |")
    store(RESULTS / f"pipeline_{args.tag}", result, [header, "", *rows, *stages])


if __name__ == "__main__":
    main()
