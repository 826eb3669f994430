"""The demo's stages. Each is one call into the package's own engines (phantom writer,
pretraining, fine-tuning, distillation, export, runtime) and returns the numbers it made;
``chain.run_demo`` runs them in order and ``report`` shows them.

Every stage writes below the demo folder (``Paths``)::

    DIR/data                           phantom datasets
    DIR/pretrain                       SF-MIM run (encoder/, previews/)
    DIR/finetune                       the teacher (model/, eval.json, previews/)
    DIR/fractions/<init>_<pct>         the label-fraction runs
    DIR/distill                        the student (model/, distill_report.json)
    DIR/bundles/<backend>-int8         deployment bundles (manifest.json with the gate's figures)
    DIR/run                            the phantom cine through the runtime (overlay.mp4, report.json)
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from usfm_edge.contracts import Target
from usfm_edge.data.layouts import SEG_SPLITS
from usfm_edge.demo.plan import DemoPlan
from usfm_edge.runtime.frame import Result
from usfm_edge.runtime.sinks.base import Sink

BACKENDS = (Target.ONNXRUNTIME, Target.OPENVINO)  # the INT8 targets the demo exports, each through the gate
BATCH = 8  # fine-tuning and distillation batch
# What the demo owns in its folder: removed before a new run, and nothing else is touched.
OWNED = ("data", "pretrain", "finetune", "fractions", "distill", "bundles", "run", "report", "report.html",
         "summary.json")


class Paths:
    """Where each stage writes, below the demo folder ``root``."""

    def __init__(self, root: str | Path) -> None:
        self.root = root = Path(root)
        self.seg = root / "data" / "seg"  # labelled phantom frames, split 70/15/15
        self.pretrain_data = root / "data" / "pretrain"  # unlabelled frames of every organ
        self.seg_labelled = root / "data" / "seg_labelled"  # the teacher's labelled subset, and val
        self.seg_unlabelled = root / "data" / "seg_unlabelled"  # the other training frames, images only
        self.pretrain = root / "pretrain"
        self.teacher_run = root / "finetune"
        self.fractions = root / "fractions"
        self.student_run = root / "distill"
        self.bundles = root / "bundles"
        self.run = root / "run"
        self.assets = root / "report"


@contextmanager
def item_bar(label: str, total: int, enabled: bool) -> Iterator[Callable[[int], None]]:
    """A rich bar over items (frames, runs, calls); ``advance(n)`` is thread-safe."""
    if not enabled:
        yield lambda n=1: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n=1: bar.update(task, advance=n)


# --------------------------------------------------------------------------- data


def make_data(plan: DemoPlan, paths: Paths, *, progress: bool) -> dict[str, Any]:
    """Labelled lesion frames of one organ and unlabelled frames of every organ."""
    from usfm_edge.data.phantom import PhantomConfig
    from usfm_edge.data.phantom_datasets import write_phantom_dataset

    config = PhantomConfig(size=(plan.render_size, plan.render_size), organ=plan.organ)
    with item_bar("phantom frames", plan.seg_frames + plan.pretrain_frames, progress) as advance:
        write_phantom_dataset("seg", paths.seg, n=plan.seg_frames, config=config, seed=plan.seed, on_item=advance)
        write_phantom_dataset("pretrain", paths.pretrain_data, n=plan.pretrain_frames, config=config,
                              seed=plan.seed + 1, on_item=advance)
    splits = {split: len(list((paths.seg / folder / "image").glob("*.png"))) for split, folder in SEG_SPLITS.items()}
    return {"organ": plan.organ, "render_size": plan.render_size, "seg_frames": splits,
            "unlabeled_frames": plan.pretrain_frames}


# --------------------------------------------------------------------------- training


def pretrain(plan: DemoPlan, paths: Paths, *, progress: bool) -> dict[str, Any]:
    """A short SF-MIM run of the teacher's encoder on the unlabelled frames."""
    from usfm_edge.train.pretrain.config import PretrainConfig
    from usfm_edge.train.pretrain.engine import STATE_FILE, run_pretrain

    cfg = PretrainConfig(objective="sfmim", data=[str(paths.pretrain_data)], out=str(paths.pretrain),
                         model="usfm_vit_t16", model_args=dict(plan.teacher_args), img_size=plan.img_size,
                         mask_patch=16, steps=plan.pretrain_steps, batch_size=plan.pretrain_batch,
                         lr=1e-3 * 256 / plan.pretrain_batch, lr_scaling="linear",  # 1e-3 at this batch
                         num_workers=0, save_every=plan.pretrain_steps, log_every=5,
                         preview_every=max(1, plan.pretrain_steps // 3), seed=plan.seed)
    run_pretrain(cfg, progress=progress)
    (paths.pretrain / STATE_FILE).unlink(missing_ok=True)  # the demo starts over rather than resumes
    rows = [json.loads(line) for line in (paths.pretrain / "metrics.jsonl").read_text().splitlines()]
    return {"steps": plan.pretrain_steps, "loss_first": rows[0]["loss"], "loss_last": rows[-1]["loss"],
            "previews": sorted(str(p.relative_to(paths.root)) for p in (paths.pretrain / "previews").glob("*.png")),
            "encoder": str((paths.pretrain / "encoder").relative_to(paths.root))}


def finetune(plan: DemoPlan, paths: Paths, out: Path, *, fraction: float, init: Path | None, previews: int,
             progress: bool) -> dict[str, Any]:
    """One segmentation fine-tuning run with ``fraction`` of the training labels; every run
    gets the same number of optimiser steps, so a small fraction is not also a short run."""
    from usfm_edge.train.config import FinetuneConfig
    from usfm_edge.train.finetune import STATE_FILE, run_finetune

    n_train = len(list((paths.seg / SEG_SPLITS["train"] / "image").glob("*.png")))
    steps_per_epoch = math.ceil(max(1, round(n_train * fraction)) / BATCH)
    epochs = min(plan.max_epochs, max(1, round(plan.finetune_steps / steps_per_epoch)))
    cfg = FinetuneConfig(task="seg", data=str(paths.seg), out=str(out), model="usfm_vit_t16",
                         model_args=dict(plan.teacher_args), init=str(init) if init else None, img_size=plan.img_size,
                         label_fraction=fraction, epochs=epochs, batch_size=BATCH, lr=2e-3, warmup_epochs=0.5,
                         previews=previews, seed=plan.seed)
    run_finetune(cfg, progress=progress)
    (out / STATE_FILE).unlink(missing_ok=True)  # ~30 MB of optimiser state, for resuming only
    evaluation = json.loads((out / "eval.json").read_text())
    subset = json.loads((out / "subset.json").read_text())
    return {"init": "pretrained" if init else "scratch", "fraction": fraction, "labelled_frames": subset["count"],
            "epochs": epochs, "dice": evaluation["mean"]["dice_mean"], "split": evaluation["split"],
            "frames": len(evaluation["per_case"]), "model": str((out / "model").relative_to(paths.root))}


def fraction_runs(plan: DemoPlan, paths: Paths, *, progress: bool, say: Callable[[str], None]) -> list[dict]:
    rows = []
    for init, fraction in plan.fraction_runs:
        say(f"{'SF-MIM encoder' if init == 'pretrained' else 'from scratch'}, {100 * fraction:g} % of the labels")
        rows.append(finetune(plan, paths, paths.fractions / f"{init}_{100 * fraction:g}",
                             fraction=fraction, init=paths.pretrain / "encoder" if init == "pretrained" else None,
                             previews=0, progress=progress))
    return rows


def split_by_labels(paths: Paths) -> tuple[Path, Path]:
    """The teacher's labelled subset as a dataset root (those training frames with their masks,
    and the validation split), and the other training frames as a folder of images: the
    student gets the labels the teacher got and no others."""
    from usfm_edge.data.layouts import load_segmentation

    labelled, unlabelled = paths.seg_labelled, paths.seg_unlabelled
    chosen = set(json.loads((paths.teacher_run / "subset.json").read_text())["indices"])
    train = labelled / SEG_SPLITS["train"]
    for folder in (train / "image", train / "mask", unlabelled):
        folder.mkdir(parents=True, exist_ok=True)
    for i, sample in enumerate(load_segmentation(paths.seg, "train").samples):
        if i in chosen:
            shutil.copyfile(sample.image, train / "image" / sample.image.name)
            shutil.copyfile(sample.mask, train / "mask" / sample.mask.name)
        else:
            shutil.copyfile(sample.image, unlabelled / sample.image.name)
    shutil.copytree(paths.seg / SEG_SPLITS["val"], labelled / SEG_SPLITS["val"])
    return labelled, unlabelled


def distill(plan: DemoPlan, paths: Paths, *, progress: bool) -> dict[str, Any]:
    """The student learns the teacher's soft masks and features on every training frame, and
    the task loss on the teacher's labelled ones (the same 20 %)."""
    from usfm_edge.train.distill import DistillConfig, run_distill

    labelled, unlabelled = split_by_labels(paths)
    cfg = DistillConfig(teacher=str(paths.teacher_run / "model"), student="usfm_vit_t16",
                        student_args=dict(plan.student_args), data=str(labelled), unlabeled=str(unlabelled),
                        out=str(paths.student_run), epochs=plan.distill_epochs, batch_size=BATCH, lr=2e-3,
                        seed=plan.seed)
    run_distill(cfg, progress=progress)
    report = json.loads((paths.student_run / "distill_report.json").read_text())
    return {key: report[key] for key in ("teacher_params_m", "student_params_m", "teacher_gmacs", "student_gmacs",
                                         "macs_ratio")} | {"val_teacher_dice": report["teacher"],
                                                           "val_student_dice": report["student"]}


# --------------------------------------------------------------------------- export


def export(plan: DemoPlan, paths: Paths, *, threads: int | None, say: Callable[[str], None]) -> dict[str, Any]:
    """The student to an INT8 bundle per backend, through the accuracy gate on the test
    frames. A gate failure is a result: it is recorded and shown, and the run goes on."""
    from usfm_edge.contracts.manifest import BundleManifest
    from usfm_edge.export.exporter import ExportGateError, export_bundle

    results: dict[str, Any] = {}
    source = None
    for backend in BACKENDS:
        out = paths.bundles / f"{backend}-int8"
        try:
            export_bundle(paths.student_run / "model", target=backend, precision="int8", out=out, calib=paths.seg,
                          val=paths.seg / SEG_SPLITS["test"], calib_limit=plan.calib_frames, threads=threads)
        except ExportGateError as exc:
            results[backend] = {"status": "gate failed", "message": str(exc)}
            say(f"{backend} int8: GATE FAILED: {exc}")
            continue
        manifest = BundleManifest.read(out)
        validation, artifact = manifest.validation, manifest.artifacts[0]
        accepted = validation.artifacts[artifact.file]
        source = validation.source
        results[backend] = {
            "status": "passed", "bundle": str(out.relative_to(paths.root)), "artifact": artifact.file,
            "dice": accepted["value"], "drop": accepted["drop"], "max_drop": validation.max_drop,
            "fallback_level": accepted["level"], "runs_in": accepted["runs_in"],
            "parity_max_rel": validation.parity[artifact.file]["max_rel"], "frames": validation.frames}
        say(f"{backend} int8: gate passed, Dice {accepted['value']:.3f} (drop {accepted['drop']:+.4f}, "
            f"max {validation.max_drop})")
    return {"backends": results, "student_fp32_dice": source}


def fp32_fallback_bundle(paths: Paths) -> Path:
    """When no INT8 bundle passed its gate, the cine still runs, on the fp32 ONNX model."""
    from usfm_edge.export.exporter import export_bundle

    return export_bundle(paths.student_run / "model", target="onnxruntime", precision="fp32",
                         out=paths.bundles / "onnxruntime-fp32", val=paths.seg / SEG_SPLITS["test"])


# --------------------------------------------------------------------------- runtime


class CineCollector(Sink):
    """A sink that keeps what the pipeline drew, and scores each frame's mask against the
    phantom's truth on the screen grid (live Dice)."""

    scheme = "demo"

    def __init__(self, truth_for: Callable[[int], np.ndarray]) -> None:
        self.truth_for = truth_for
        self.overlays: list[np.ndarray] = []
        self.truths: list[np.ndarray] = []
        self.dice: list[float] = []

    def write(self, result: Result) -> None:
        truth = self.truth_for(result.frame.index) > 0
        pred = np.zeros(truth.shape, bool)
        for (x, y, w, h), out in zip(result.boxes, result.outputs):
            pred[y:y + h, x:x + w] |= out["mask"] > 0
        total = pred.sum() + truth.sum()
        self.dice.append(float(2 * (pred & truth).sum() / total) if total else 1.0)
        self.overlays.append(result.overlay)
        self.truths.append(truth)


def run_cine(plan: DemoPlan, paths: Paths, bundle: Path, backend: str, *, threads: int | None,
             progress: bool) -> tuple[dict, CineCollector]:
    """The runtime on a phantom cine in scanner UI chrome: region detection, crop, infer,
    overlay, video; the same code path as ``usfm-edge run``."""
    from usfm_edge.runtime.app import RunOptions, build_pipeline
    from usfm_edge.runtime.metrics import write_report

    h, w = plan.canvas
    source = (f"phantom:?fps=0&frames={plan.cine_frames}&size={plan.render_size}&canvas={h}x{w}"
              f"&organ={plan.organ}&seed={plan.seed}")
    video = paths.run / "overlay.mp4"
    options = RunOptions(bundle=bundle, source=source, sinks=[f"video:{video}"], backend=backend, threads=threads,
                         max_frames=plan.cine_frames)
    pipeline = build_pipeline(options)
    collector = CineCollector(pipeline.source.truth_for)
    pipeline.sinks.append(collector)
    with item_bar(f"run ({backend})", plan.cine_frames, progress) as advance:
        pipeline.on_result = lambda _result: advance(1)
        report = pipeline.run()
    write_report(paths.run / "report.json", report)
    infer = report["stages"].get("infer", {})
    return {"bundle": str(bundle.relative_to(paths.root)), "backend": backend,
            "precision": str(pipeline.model.artifact.precision), "source": source,
            "frames": report["frames_out"], "fps_out": report["fps_out"], "infer_p50_ms": infer.get("p50_ms"),
            "dice_mean": float(np.mean(collector.dice)) if collector.dice else None, "dice_per_frame": collector.dice,
            "video": str(video.relative_to(paths.root))}, collector
