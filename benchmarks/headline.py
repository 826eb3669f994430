"""The headline: the USFM ViT-B/16 teacher in fp32 torch eager against the distilled INT8
student on each CPU backend, at 224, side by side in one run, with each one's Dice.

    # the real figures (issue #7's HC18 teacher and distilled student)
    python -m benchmarks.headline --teacher runs/hc18_teacher/model --student runs/hc18_student/model \\
        --calib ../shared/data/hc18_unlabeled --val ../shared/data/hc18 --tag hc18
    # or the student's bundles as exported (repeat --student-bundle)
    python -m benchmarks.headline --teacher runs/hc18_teacher/model --student-bundle bundles/ov_int8 \\
        --student-bundle bundles/ort_int8 --val ../shared/data/hc18 --tag hc18
    # speed only: freshly initialised USFM ViT-B/16 + UPerNet and ViT-Ti/16 + light head
    python -m benchmarks.headline --tag untrained

A model the script initialises itself is labelled untrained and gets no Dice (its Dice would
mean nothing); its latency, memory and multiply-accumulates are real. Speed-up = the
teacher's p50 / the cell's p50, both batch 1, measured one after the other in this run; the
run is ``--rounds`` rounds of (teacher, then every student cell) and the speed-up is the
median of the rounds' ratios, so a burst of other work on a shared machine spoils one round,
not the figure. "at min" is the same ratio of the fastest runs, which such bursts disturb least.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import tempfile
from pathlib import Path

from benchmarks.deploy_common import calibration_folder, gpu_device, markdown, model_gmacs, r, untrained_model_dir
from benchmarks.store import store
from usfm_edge.bench import run_bench
from usfm_edge.bench.machine import describe
from usfm_edge.bench.report import label

TEACHER_ARCH, STUDENT_ARCH = "usfm_vit_b16", "usfm_vit_t16"


def measured(role: str, doc: dict, weights: str, gmacs: float | None) -> list[dict]:
    rows = []
    for cell in doc["cells"]:
        row = {"role": role, "weights": weights, "source": doc["target"]["path"], "gmacs": gmacs,
               "backend": cell["backend"], "precision": cell["precision"], "status": cell["status"],
               "reason": cell["reason"]}
        if cell["status"] == "ok":
            lat, metric = cell["latency"], cell["metric"] or {}
            row.update(runs_in=cell["runs_in"], float_precision=cell["float_precision"], p50_ms=lat["p50_ms"],
                       p90_ms=lat["p90_ms"], p99_ms=lat["p99_ms"], min_ms=lat["min_ms"], fps=lat["fps"],
                       peak_rss_mb=cell["peak_rss_mb"],
                       load_s=cell["load_s"], dice=metric.get("value") if weights == "trained" else None)
        rows.append(row)
    return rows


def prepare(args: argparse.Namespace, scratch: Path) -> dict:
    """The models (given, or freshly initialised and labelled so) and their MACs, once."""
    teacher, teacher_weights = args.teacher, "trained"
    if teacher is None:
        teacher, teacher_weights = untrained_model_dir(TEACHER_ARCH, scratch / "teacher", img_size=args.img_size), \
            "untrained"
    student, student_weights = args.student, "trained"
    if student is None and not args.student_bundle:
        student, student_weights = untrained_model_dir(STUDENT_ARCH, scratch / "student", img_size=args.img_size), \
            "untrained"
    return {"teacher": teacher, "teacher_weights": teacher_weights, "teacher_gmacs": model_gmacs(teacher)[0],
            "student": student, "student_weights": student_weights,
            "student_gmacs": model_gmacs(student)[0] if student else None,
            "calib": calibration_folder(args.calib, scratch, size=args.img_size) if student else None}


def one_round(args: argparse.Namespace, models: dict, scratch: Path, device: str, backends: list[str]) -> list[dict]:
    """The teacher, then every student cell, each in its own process."""
    common = {"threads": args.threads, "warmup": args.warmup, "iters": args.iters, "device": device,
              "vendor_tools": False, "progress": lambda m: print(m, flush=True)}
    trained_val = {"val": args.val if models["teacher_weights"] == "trained" else None}
    doc = run_bench(models["teacher"], backends=["torch"], precisions=["fp32"], **trained_val, **common)
    rows = measured("teacher", doc, models["teacher_weights"], models["teacher_gmacs"])
    for bundle in args.student_bundle:
        doc = run_bench(bundle, backends=backends, precisions=["int8"], val=args.val, **common)
        source = doc["target"]["model_dir"]
        rows += measured("student", doc, "trained", model_gmacs(Path(source))[0] if source else None)
    if models["student"] is not None:
        doc = run_bench(models["student"], backends=backends + ["torch"], precisions=["fp32", "int8"],
                        calib=models["calib"], calib_limit=args.calib_limit, work=scratch / f"student_bundles_{device}",
                        val=args.val if models["student_weights"] == "trained" else None, **common)
        rows += measured("student", doc, models["student_weights"], models["student_gmacs"])
    return rows


def merge_rounds(rounds: list[list[dict]]) -> list[dict]:
    """One row per cell over the rounds: the median of the per-round p50s (and p90, p99, fps),
    the fastest run of all, and the speed-up as the median of the per-round ratios, each
    round's teacher and student measured within minutes of each other."""
    merged = []
    for i, first in enumerate(rounds[0]):
        ok = [rows[i] for rows in rounds if rows[i]["status"] == "ok"]
        teachers = [rows[0] for rows in rounds if rows[i]["status"] == "ok"]
        if not ok:
            merged.append(first)
            continue
        row = dict(ok[0])
        for key in ("p50_ms", "p90_ms", "p99_ms", "fps"):
            row[key] = statistics.median(r[key] for r in ok)
        row.update(min_ms=min(r["min_ms"] for r in ok), peak_rss_mb=max(r["peak_rss_mb"] for r in ok),
                   rounds_p50_ms=[r["p50_ms"] for r in ok])
        if all(t["status"] == "ok" for t in teachers):
            ratios = [t["p50_ms"] / r["p50_ms"] for t, r in zip(teachers, ok)]
            row.update(speedup_vs_teacher=statistics.median(ratios), rounds_speedup=ratios,
                       speedup_at_min=min(t["min_ms"] for t in teachers) / row["min_ms"])
            if row["dice"] is not None and teachers[0]["dice"] is not None:
                row["dice_drop_vs_teacher"] = teachers[0]["dice"] - row["dice"]
        merged.append(row)
    return merged


def run(args: argparse.Namespace, scratch: Path, device: str, backends: list[str]) -> list[dict]:
    models = prepare(args, scratch)
    return merge_rounds([one_round(args, models, scratch, device, backends) for _ in range(args.rounds)])


def times(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}x"


def table(rows: list[dict]) -> list[str]:
    body = []
    for row in rows:
        if row["status"] != "ok":
            continue
        body.append([row["role"], row["weights"], row["gmacs"], label(row), r(row["p50_ms"]), r(row["p99_ms"]),
                     r(row["min_ms"]), r(row["fps"], 1), row["peak_rss_mb"], times(row.get("speedup_vs_teacher")),
                     times(row.get("speedup_at_min")),
                     "n/a (untrained)" if row["weights"] == "untrained" else r(row["dice"], 4)])
    return markdown(["model", "weights", "GMACs", "cell (runs in)", "p50 ms", "p99 ms", "min ms", "fps", "peak MiB",
                     "speed-up at p50", "at min", "Dice"], body, align="---|---|---:|---|" + "|".join(["---:"] * 8))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", type=Path,
                        help="Teacher model directory (default: untrained usfm_vit_b16 + UPerNet)")
    parser.add_argument("--student", type=Path, help="Student model directory, exported here to int8 per backend "
                        "(default: untrained usfm_vit_t16 + light head)")
    parser.add_argument("--student-bundle", type=Path, action="append", default=[],
                        help="Student int8 bundle(s) instead of --student; repeatable")
    parser.add_argument("--val", type=Path, help="Dataset root: Dice of every trained model on its validation split")
    parser.add_argument("--calib", type=Path, help="Student int8 calibration frames (default: shared HC18 unlabeled)")
    parser.add_argument("--calib-limit", type=int, default=128)
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--backends", default="onnxruntime,openvino", help="CPU backends for the student")
    parser.add_argument("--gpu-backends", default="onnxruntime,tensorrt", help="student backends when a GPU is present")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--iters", type=int, default=10, help="timed runs per cell per round")
    parser.add_argument("--rounds", type=int, default=3, help="teacher then students, this many times")
    parser.add_argument("--tag", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    machine = describe()
    with tempfile.TemporaryDirectory(prefix="usfm-headline-") as scratch:
        rows = run(args, Path(scratch), "CPU", args.backends.split(","))
        gpu = gpu_device()
        gpu_rows = run(args, Path(scratch), "GPU", args.gpu_backends.split(",")) if gpu else []
    best = max((row for row in rows if row["role"] == "student" and row["precision"] == "int8"
                and row.get("speedup_vs_teacher")), key=lambda row: row["speedup_vs_teacher"], default=None)
    result = {
        "benchmark": "headline", "date": dt.date.today().isoformat(), "machine": machine,
        "settings": {k: [str(p) for p in v] if isinstance(v, list) else str(v) if isinstance(v, Path) else v
                     for k, v in vars(args).items()},
        "headline": None if best is None else {
            "speedup": round(best["speedup_vs_teacher"], 1), "speedup_at_min": round(best["speedup_at_min"], 1),
            "rounds_speedup": [round(v, 1) for v in best["rounds_speedup"]],
            "student_cell": f"{best['backend']} int8",
            "teacher_p50_ms": next(row["p50_ms"] for row in rows if row["role"] == "teacher"),
            "student_p50_ms": best["p50_ms"], "target": 50,
            "weights": sorted({row["weights"] for row in rows if row["status"] == "ok"})},
        "results": rows,
        "gpu": {"device": gpu, "results": gpu_rows} if gpu else {"device": None, "note": "no GPU on this machine"},
    }
    stem = args.out / f"headline_{args.tag}_{args.img_size}"
    untrained = sorted({row["role"] for row in rows if row["weights"] == "untrained"})
    lines = [f"Teacher vs INT8 student, {args.img_size}x{args.img_size} gray, batch 1, {args.threads} threads, "
             f"{args.iters} iters x {args.rounds} rounds, {machine['cpu']}, {result['date']}"
             + (f"; UNTRAINED {' and '.join(untrained)} weights: speed only, no Dice" if untrained else ""), ""]
    lines += table(rows)
    if best is not None:
        head = result["headline"]
        lines += ["", (f"Headline: {head['speedup']}x (median of the rounds' p50 ratios {head['rounds_speedup']}), "
                       f"{head['speedup_at_min']}x at the fastest runs; {best['backend']} int8 student vs fp32 torch "
                       "eager teacher; target >= 50x")]
    lines += ["", "GPU: " + (gpu if gpu else "none on this machine; the same script fills this section on one")]
    if gpu_rows:
        lines += table(gpu_rows)
    store(stem, result, lines)


if __name__ == "__main__":
    main()
