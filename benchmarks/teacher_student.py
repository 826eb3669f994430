"""Teacher vs distilled student vs the student's bundles, paired per case on one split.

    python -m benchmarks.teacher_student --data ../shared/data/hc18 --split test \\
        --teacher runs/teacher/model --student runs/student/model --bundle bundles/student_ov_int8 --tag hc18

Every model sees the same frames; Dice is computed on each frame's own grid. The table gives
the means, each one's drop against the teacher with a paired 95 % interval (the frames are
shared, so the per-frame differences are what varies), the worst frame, how many frames lose
more than 0.01, and the multiply-accumulates per frame; the JSON keeps every frame's Dice."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import numpy as np
import torch

from benchmarks.machine import describe
from benchmarks.store import store
from usfm_edge.backends import get_backend
from usfm_edge.contracts.manifest import read_verified
from usfm_edge.contracts.prepare import prepare
from usfm_edge.data.layouts import load_segmentation
from usfm_edge.metrics.task_eval import segmentation_case
from usfm_edge.models import load_model_dir
from usfm_edge.train.distill import macs


def dice_per_case(run, split, spec) -> list[float]:
    scores = []
    for i in range(len(split)):
        image, mask = split.load(i)
        x, view = prepare(image, spec)
        scores.append(segmentation_case(run(x)[0], mask, spec, view, num_classes=len(split.labels))["dice"])
    return scores


def torch_runner(model):
    return lambda x: model(torch.from_numpy(x)).detach().numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--teacher", required=True)
    parser.add_argument("--student", required=True)
    parser.add_argument("--bundle", action="append", default=[], help="Student bundle(s); repeatable.")
    parser.add_argument("--tag", default="")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    split = load_segmentation(args.data, args.split)
    rows, cases = [], {}
    with torch.no_grad():
        for role, path in (("teacher", args.teacher), ("student", args.student)):
            model = load_model_dir(path)
            spec = model.config.preprocess
            cases[role] = dice_per_case(torch_runner(model), split, spec)
            rows.append({"model": role, "architecture": model.config.architecture, "backend": "torch",
                         "precision": "fp32", "gmacs": macs(model, spec)})
    for bundle in args.bundle:
        manifest = read_verified(bundle)
        artifact = manifest.artifact()
        # a TensorRT artifact is an ONNX file: run it in ONNX Runtime, as the export gate did
        backend = "onnxruntime" if artifact.backend == "tensorrt" else str(artifact.backend)
        session = get_backend(backend).load(Path(bundle) / artifact.file, precision=artifact.precision)
        name = f"student {artifact.target} {artifact.precision}"
        cases[name] = dice_per_case(session.run, split, manifest.preprocess)
        runs_in = backend if backend == artifact.backend else f"{backend} ({artifact.backend} file)"
        rows.append({"model": name, "architecture": manifest.source["architecture"], "backend": runs_in,
                     "precision": str(artifact.precision), "gmacs": rows[1]["gmacs"]})
    teacher = np.array(cases["teacher"])
    for row in rows:
        values = np.array(cases[row["model"]])
        drops = teacher - values
        # paired: the same frames, so the spread of the per-frame drops bounds the mean drop
        half = 1.96 * float(drops.std(ddof=1)) / np.sqrt(len(drops)) if len(drops) > 1 else float("nan")
        row.update(dice=round(float(values.mean()), 4), drop_vs_teacher=round(float(drops.mean()), 4),
                   drop_ci95=[round(float(drops.mean()) - half, 4), round(float(drops.mean()) + half, 4)],
                   worst_case_drop=round(float(drops.max()), 4),
                   frames_worse_by_over_001=int((drops > 0.01).sum()))
    names = [p.stem for p in (s.image for s in split.samples)]
    result = {"benchmark": "teacher_student", "date": dt.date.today().isoformat(), "machine": describe(),
              "data": args.data, "split": args.split, "frames": len(split), "results": rows,
              "per_case": [{"name": n, **{k: round(v[i], 4) for k, v in cases.items()}} for i, n in enumerate(names)]}
    stem = args.out / f"teacher_student{('_' + args.tag) if args.tag else ''}"
    lines = [f"{args.data} {args.split} split ({len(split)} frames), Dice on each frame's own grid ({result['date']})", "",
             "| model | architecture | runs in | precision | GMACs/frame | Dice | drop vs teacher (paired 95% CI) "
             "| worst frame | frames worse by > 0.01 |",
             "|---|---|---|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['model']} | {r['architecture']} | {r['backend']} | {r['precision']} | {r['gmacs']} | {r['dice']} | "
              f"{r['drop_vs_teacher']} [{r['drop_ci95'][0]}, {r['drop_ci95'][1]}] | {r['worst_case_drop']} | "
              f"{r['frames_worse_by_over_001']} |" for r in rows[1:]]
    lines.insert(4, f"| teacher | {rows[0]['architecture']} | torch | fp32 | {rows[0]['gmacs']} | {rows[0]['dice']} "
                    "| (reference) | | |")
    lines += ["", "Drop = teacher - model, per frame; a negative drop means the model is better than the teacher."]
    store(stem, result, lines)


if __name__ == "__main__":
    main()
