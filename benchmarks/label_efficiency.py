"""Label efficiency on real ultrasound: does self-supervised pretraining pay at 5-20 % of the labels?

1. Pretrain once per objective on unlabeled real frames (SF-MIM, MAE, and teacher-feature
   regression toward the SF-MIM encoder), plus a phantom-supervised encoder (fine-tuned on
   phantom lesions) as the old baseline.
2. Fine-tune every init x label fraction x seed with the same number of optimiser steps.
3. Test Dice per (init, fraction), each against scratch at the same fraction with a paired
   95 % interval (pairs: the same test frames, averaged over the seeds), and the target
   question: SF-MIM with 20 % of the labels against scratch with 100 %.
4. The chain: the 20 % teachers (scratch and SF-MIM) distilled into a student and exported to
   an OpenVINO INT8 bundle, Dice at each step.

Everything comes from a recipe (``recipes/label_efficiency/*.yaml``: the CPU size here, ViT-B
at 224 on a GPU box with the other). Runs are kept under ``--work`` and reused, so an
interrupted benchmark continues where it stopped (each run is resumable on its own too).

    python -m benchmarks.label_efficiency --recipe recipes/label_efficiency/hc18_t16_64.yaml \\
        --work runs/label_efficiency --tag hc18_t16_64
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import math
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from benchmarks.machine import describe
from benchmarks.store import store
from usfm_edge.train.config import FinetuneConfig
from usfm_edge.train.engine import CONFIG_FILE, STATE_FILE
from usfm_edge.train.finetune import run_finetune

INITS = ("scratch", "sfmim", "mae", "feature", "phantom")


@dataclass
class Recipe:
    data: str = "../shared/data/hc18"  # labelled root (training/val/test splits)
    unlabeled: list[str] = field(default_factory=lambda: ["../shared/data/hc18_unlabeled"])
    phantom_frames: int = 0  # phantom frames of every organ mixed into the unlabeled set
    model: str = "usfm_vit_t16"
    model_args: dict = field(default_factory=dict)
    img_size: int = 64
    # pretraining, per entry of `objectives` (its name is an init): objective_args, overrides of
    # these, and `objective:` to pretrain a variant under its own name (e.g. sfmim_long: {objective:
    # sfmim, steps: 3000})
    pretrain_steps: int = 1500
    pretrain_batch: int = 64
    pretrain_lr: float | None = None  # per 256 images; None: the engine's default
    mask_patch: int = 16
    mask_ratio: float = 0.6
    objectives: dict = field(default_factory=lambda: {"sfmim": {}, "mae": {}, "feature": {}})
    phantom_seg_images: int = 400  # phantom-supervised baseline: lesion segmentation on these
    phantom_seg_steps: int = 600
    # fine-tuning: every run gets the same optimiser steps, whatever its fraction
    steps: int = 1000
    batch_size: int = 16
    lr: float = 1e-3
    layer_decay: float = 0.75  # pretrained encoders
    scratch_layer_decay: float = 1.0  # a random encoder's early layers need no protection
    eval_every: int = 50
    fractions: list[float] = field(default_factory=lambda: [0.05, 0.1, 0.2, 0.5, 1.0])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    inits: list[str] = field(default_factory=lambda: list(INITS))
    # the chain (teacher at chain_fraction -> student -> INT8)
    chain_fraction: float = 0.2
    student: str = "usfm_vit_t16"
    student_args: dict = field(default_factory=lambda: {"depth": 4})
    distill_epochs: int = 10
    device: str = "auto"
    precision: str = "auto"

    @classmethod
    def read(cls, path: Path, **overrides) -> Recipe:
        values = yaml.safe_load(path.read_text()) or {}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


# --------------------------------------------------------------------------- runs


def pretrain(recipe: Recipe, name: str, work: Path) -> Path:
    """The encoder of one entry of ``recipe.objectives`` (trained once; an interrupted run resumes)."""
    from usfm_edge.train.pretrain.config import PretrainConfig
    from usfm_edge.train.pretrain.engine import run_pretrain

    out = work / "pretrain" / name
    if (out / "encoder" / "config.json").is_file():
        return out / "encoder"
    options = dict(recipe.objectives.get(name) or {})
    objective = options.pop("objective", name)
    cfg = PretrainConfig(
        objective=objective, data=unlabeled_sources(recipe, work), out=str(out), model=recipe.model,
        model_args=dict(recipe.model_args), img_size=recipe.img_size, steps=options.pop("steps", recipe.pretrain_steps),
        batch_size=options.pop("batch_size", recipe.pretrain_batch),
        mask_patch=options.pop("mask_patch", recipe.mask_patch),
        mask_ratio=options.pop("mask_ratio", recipe.mask_ratio), organ_alpha=0.0, device=recipe.device,
        precision=recipe.precision, teacher=str(pretrain(recipe, "sfmim", work)) if objective == "feature" else None,
        preview_every=0, save_every=100, **({"lr": options.pop("lr")} if "lr" in options
                                             else {"lr": recipe.pretrain_lr} if recipe.pretrain_lr else {}),
        objective_args=options)
    run_pretrain(cfg, resume=(out / STATE_FILE).is_file(), progress=False)
    return out / "encoder"


def unlabeled_sources(recipe: Recipe, work: Path) -> list[str]:
    sources = list(recipe.unlabeled)
    if recipe.phantom_frames:
        from usfm_edge.data.phantom import PhantomConfig
        from usfm_edge.data.phantom_datasets import write_phantom_dataset

        phantom = work / "phantom_frames"
        if not (phantom / "manifest.csv").is_file():
            write_phantom_dataset("pretrain", phantom, n=recipe.phantom_frames, config=PhantomConfig(size=(256, 256)))
        sources.append(str(phantom / "manifest.csv"))
    return sources


def phantom_supervised(recipe: Recipe, work: Path) -> Path:
    """An encoder trained to segment phantom lesions: supervised pretraining on synthetic data."""
    from usfm_edge.data.phantom import PhantomConfig
    from usfm_edge.data.phantom_datasets import write_phantom_dataset

    data = work / "phantom_seg"
    if not (data / "labels.csv").is_file():
        write_phantom_dataset("seg", data, n=recipe.phantom_seg_images, config=PhantomConfig(size=(128, 128),
                                                                                             organ="breast"))
    return finetune(recipe, work / "pretrain" / "phantom", init=None, fraction=1.0, seed=0, data=str(data),
                    steps=recipe.phantom_seg_steps) / "model"


def finetune(recipe: Recipe, out: Path, *, init: str | None, fraction: float, seed: int, data: str | None = None,
             steps: int | None = None) -> Path:
    """One fine-tuning run; its epochs give ``steps`` optimiser steps whatever the fraction."""
    if (out / "eval.json").is_file():
        return out
    data = data or recipe.data
    from usfm_edge.train.datasets import load_split

    n_train = max(1, round(len(load_split("seg", data, "train")) * fraction))
    epochs = max(1, math.ceil((steps or recipe.steps) / math.ceil(n_train / recipe.batch_size)))
    cfg = FinetuneConfig(task="seg", data=data, out=str(out), model=recipe.model, model_args=dict(recipe.model_args),
                         init=init, img_size=recipe.img_size, label_fraction=fraction, epochs=epochs,
                         batch_size=recipe.batch_size, lr=recipe.lr, warmup_epochs=0.05 * epochs,
                         layer_decay=recipe.layer_decay if init else recipe.scratch_layer_decay,
                         eval_every=recipe.eval_every, seed=seed, previews=0, device=recipe.device,
                         precision=recipe.precision)
    run_finetune(cfg, resume=(out / STATE_FILE).is_file(), progress=False)
    return out


def encoders(recipe: Recipe, work: Path) -> dict[str, str | None]:
    made: dict[str, str | None] = {}
    for init in recipe.inits:
        start = time.perf_counter()
        made[init] = (None if init == "scratch" else str(phantom_supervised(recipe, work)) if init == "phantom"
                      else str(pretrain(recipe, init, work)))
        print(f"init {init}: {made[init]} ({time.perf_counter() - start:.0f} s)", flush=True)
    return made


def grid(recipe: Recipe, work: Path, made: dict[str, str | None]) -> list[dict]:
    rows = []
    for init, encoder in made.items():
        for fraction in recipe.fractions:
            for seed in recipe.seeds:
                out = finetune(recipe, work / "finetune" / init / f"{fraction:g}" / str(seed), init=encoder,
                               fraction=fraction, seed=seed)
                evaluation = json.loads((out / "eval.json").read_text())
                rows.append({"init": init, "fraction": fraction, "seed": seed,
                             "train_images": json.loads((out / "subset.json").read_text())["count"],
                             "dice": evaluation["mean"]["dice_mean"],
                             "per_case": [c["dice"] for c in evaluation["per_case"]],
                             "names": [c["name"] for c in evaluation["per_case"]],
                             "seconds": wall_seconds(out)})
                print(f"{init} {fraction:g} seed {seed}: test Dice {rows[-1]['dice']:.4f}", flush=True)
    return rows


def wall_seconds(run: Path) -> float:
    """How long a fine-tuning run took, kept or not: from its config (written at the start, again
    on a resume) to its evaluation (the end)."""
    return round((run / "eval.json").stat().st_mtime - (run / CONFIG_FILE).stat().st_mtime, 1)


# --------------------------------------------------------------------------- statistics


def t_interval(differences: np.ndarray) -> tuple[float, float, float]:
    """Mean and 95 % t-interval of paired differences (frames)."""
    n = len(differences)
    mean = float(differences.mean())
    if n < 2:
        return mean, float("nan"), float("nan")
    half = T975.get(n - 1, 1.96) * float(differences.std(ddof=1)) / math.sqrt(n)
    return mean, mean - half, mean + half


# Student's t, 97.5 % quantile, by degrees of freedom (30+: within 2 % of 1.96).
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        12: 2.179, 15: 2.131, 20: 2.086, 25: 2.060, 29: 2.045, 39: 2.023, 59: 2.001}


def per_frame(rows: list[dict], init: str, fraction: float) -> np.ndarray:
    """(frames,) test Dice of each frame, averaged over the seeds."""
    runs = [r["per_case"] for r in rows if r["init"] == init and r["fraction"] == fraction]
    return np.mean(np.array(runs), axis=0)


def summarize(rows: list[dict], recipe: Recipe) -> list[dict]:
    table = []
    for init in recipe.inits:
        for fraction in recipe.fractions:
            runs = [r for r in rows if r["init"] == init and r["fraction"] == fraction]
            seeds = [r["dice"] for r in runs]
            entry = {"init": init, "fraction": fraction, "train_images": runs[0]["train_images"],
                     "dice": round(float(np.mean(seeds)), 4), "dice_seeds": [round(d, 4) for d in seeds]}
            if init != "scratch" and "scratch" in recipe.inits:
                mean, low, high = t_interval(per_frame(rows, init, fraction) - per_frame(rows, "scratch", fraction))
                entry.update(gain_vs_scratch=round(mean, 4), ci95=[round(low, 4), round(high, 4)])
            table.append(entry)
    return table


def target(rows: list[dict], recipe: Recipe, init: str = "sfmim") -> dict | None:
    """``init`` with 20 % of the labels against scratch with 100 %, paired per frame."""
    if not {init, "scratch"} <= set(recipe.inits) or not {0.2, 1.0} <= set(recipe.fractions):
        return None
    mean, low, high = t_interval(per_frame(rows, init, 0.2) - per_frame(rows, "scratch", 1.0))
    return {"init": init, "at_20": round(float(per_frame(rows, init, 0.2).mean()), 4),
            "scratch_100": round(float(per_frame(rows, "scratch", 1.0).mean()), 4),
            "difference": round(mean, 4), "ci95": [round(low, 4), round(high, 4)], "met": mean >= 0}


# --------------------------------------------------------------------------- the chain


def chain(recipe: Recipe, work: Path, made: dict[str, str | None]) -> list[dict]:
    """Teacher (20 %, seed 0) -> distilled student -> OpenVINO INT8 bundle, for scratch and
    SF-MIM: test Dice at each step, measured through the one prepare path. The SF-MIM chain
    runs twice: a student from random weights, and one that starts from the SF-MIM encoder's
    first blocks (the pretraining reaches the student directly, not only through the teacher)."""
    from usfm_edge.export.exporter import export_bundle
    from usfm_edge.train.distill import DistillConfig, run_distill

    results = []
    test = str(Path(recipe.data) / "test_set")
    variants = [("scratch", None), ("sfmim", None), ("sfmim", made.get("sfmim"))]
    for init, student_init in variants:
        if init not in made:
            continue
        teacher = work / "finetune" / init / f"{recipe.chain_fraction:g}" / "0" / "model"
        folder = work / "chain" / init
        student = folder / ("student_from_encoder" if student_init else "student")
        if not (student / "distill_report.json").is_file():
            run_distill(DistillConfig(teacher=str(teacher), student=recipe.student, student_args=recipe.student_args,
                                      student_init=student_init, data=recipe.data, unlabeled=recipe.unlabeled[0],
                                      out=str(student), epochs=recipe.distill_epochs, batch_size=recipe.batch_size,
                                      device=recipe.device, precision=recipe.precision),
                        resume=(student / STATE_FILE).is_file(), progress=False)
        bundle = folder / ("bundle_from_encoder" if student_init else "bundle")
        if not (bundle / "manifest.json").is_file():
            export_bundle(student / "model", target="openvino", precision="int8", out=bundle,
                          calib=recipe.unlabeled[0], val=test, max_drop=1.0)
        results.append({"init": init, "student_init": init if student_init else "random",
                        "teacher": test_dice(teacher, recipe), "student": test_dice(student / "model", recipe),
                        "int8": bundle_dice(bundle, test)})
        print(f"chain {init}: {results[-1]}", flush=True)
    return results


def test_dice(model_dir: Path, recipe: Recipe) -> float:
    import torch

    from usfm_edge.data.layouts import load_segmentation
    from usfm_edge.models import load_model_dir
    from usfm_edge.train.evaluate import evaluate

    model = load_model_dir(model_dir)
    split = load_segmentation(recipe.data, "test")
    return round(evaluate(model, "seg", split, model.config.preprocess, torch.device("cpu"))["mean"]["dice_mean"], 4)


def bundle_dice(bundle: Path, test: str) -> float:
    """The bundle on the test frames, prepared and scored as the export gate does."""
    from usfm_edge.backends.bundle import load_bundle
    from usfm_edge.metrics import validation

    model = load_bundle(bundle)
    valset = validation.load_val(test, "seg", model.spec, num_classes=len(model.labels))
    outputs = validation.run_batched(model.infer, valset.inputs)
    return round(validation.score(valset, outputs, model.spec, num_classes=len(model.labels))[0], 4)


# --------------------------------------------------------------------------- report


def table(summary: list[dict], targets: list[dict], chained: list[dict], recipe: Recipe,
          machine: dict) -> list[str]:
    goal = next((t for t in targets if t["init"] == "sfmim"), None)
    lines = [f"Label efficiency, {recipe.model}{f' {recipe.model_args}' if recipe.model_args else ''} at "
             f"{recipe.img_size} px, HC18 test Dice "
             f"(mean of seeds {recipe.seeds}), {recipe.steps} fine-tuning steps for every fraction; pretraining on "
             f"{', '.join(recipe.unlabeled)}{f' + {recipe.phantom_frames} phantom frames' if recipe.phantom_frames else ''}"
             f". {machine['cpu']}.", "",
             "| init | " + " | ".join(f"{100 * f:g} %" for f in recipe.fractions) + " |",
             "|---|" + "---:|" * len(recipe.fractions)]
    for init in recipe.inits:
        cells = []
        for entry in (e for e in summary if e["init"] == init):
            cell = f"{entry['dice']:.3f}"
            if "gain_vs_scratch" in entry:
                low, high = entry["ci95"]
                cell += f" ({entry['gain_vs_scratch']:+.3f} [{low:+.3f}, {high:+.3f}])"
            cells.append(cell)
        lines.append(f"| {init} | " + " | ".join(cells) + " |")
    lines += ["", "In brackets: the gain over scratch at the same fraction, with its paired 95 % interval (the "
              "same test frames, each averaged over the seeds)."]
    others = [t for t in targets if t["init"] != "sfmim"]
    if others:
        lines += ["", "The other pretrained inits with 20 % against scratch with 100 %: " + "; ".join(
            f"{t['init']} {t['difference']:+.4f} [{t['ci95'][0]:+.4f}, {t['ci95'][1]:+.4f}]" for t in others) + "."]
    if goal is not None:
        verdict = "met" if goal["met"] else "not met"
        lines += ["", f"Target, SF-MIM with 20 % of the labels >= scratch with 100 %: **{verdict}**: "
                  f"{goal['at_20']:.4f} vs {goal['scratch_100']:.4f}, difference {goal['difference']:+.4f} "
                  f"[{goal['ci95'][0]:+.4f}, {goal['ci95'][1]:+.4f}]."]
    if chained:
        lines += ["", f"The chain ({100 * recipe.chain_fraction:g} % teacher, seed 0 -> {recipe.student} "
                  f"{recipe.student_args} -> OpenVINO INT8), test Dice:", "",
                  "| teacher init | student init | teacher | student | student INT8 |", "|---|---|---:|---:|---:|"]
        lines += [f"| {c['init']} | {c['student_init']} | {c['teacher']:.4f} | {c['student']:.4f} | {c['int8']:.4f} |"
                  for c in chained]
    return lines


def plot(summary: list[dict], recipe: Recipe, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8), dpi=120)
    for init in recipe.inits:
        entries = [e for e in summary if e["init"] == init]
        xs = [100 * e["fraction"] for e in entries]
        ax.plot(xs, [e["dice"] for e in entries], marker="o", label=init)
        ax.fill_between(xs, [min(e["dice_seeds"]) for e in entries], [max(e["dice_seeds"]) for e in entries], alpha=0.12)
    ax.set_xscale("log")
    ax.set_xticks([100 * f for f in recipe.fractions], [f"{100 * f:g}" for f in recipe.fractions])
    ax.set_xlabel("training labels used (%)")
    ax.set_ylabel("test Dice (band: seeds' range)")
    ax.set_title(f"{recipe.model} {recipe.img_size} px, {recipe.steps} steps per run", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", type=Path, default=Path("recipes/label_efficiency/hc18_t16_64.yaml"))
    parser.add_argument("--work", type=Path, default=Path("runs/label_efficiency"), help="Runs, kept and reused.")
    parser.add_argument("--tag", default="hc18_t16_64")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--no-chain", action="store_true", help="Skip the teacher -> student -> INT8 chain.")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=YAML",
                        help="Override a recipe value, e.g. --set 'seeds=[0]' --set steps=20 (repeatable).")
    args = parser.parse_args()
    recipe = Recipe.read(args.recipe, **{k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.set)})
    start = time.perf_counter()
    made = encoders(recipe, args.work)
    rows = grid(recipe, args.work, made)
    summary = summarize(rows, recipe)
    targets = [t for t in (target(rows, recipe, init) for init in recipe.inits if init != "scratch") if t is not None]
    goal = next((t for t in targets if t["init"] == "sfmim"), None)
    chained = [] if args.no_chain else chain(recipe, args.work, made)
    machine = describe()
    # the command says which overrides of the recipe this result ran with
    command = " ".join(["python -m benchmarks.label_efficiency", *map(shlex.quote, sys.argv[1:])])
    result = {"benchmark": "label_efficiency", "date": dt.date.today().isoformat(), "machine": machine,
              "command": command, "recipe": dataclasses.asdict(recipe),
              "minutes": round((time.perf_counter() - start) / 60, 1),
              "summary": summary, "target": goal, "targets": targets, "chain": chained, "runs": rows}
    stem = args.out / f"label_efficiency_{args.tag}"
    store(stem, result, [*table(summary, targets, chained, recipe, machine), "", f"Command: `{command}`"])
    plot(summary, recipe, stem.with_suffix(".png"))


if __name__ == "__main__":
    main()
