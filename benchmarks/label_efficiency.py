"""Label efficiency: test Dice against the fraction of training labels, from scratch and
from a pretrained encoder. Small on CPU here; the same script runs full size on a GPU box.

    python -m benchmarks.label_efficiency --data ../shared/data/hc18 --model usfm_vit_t16 \\
        --img-size 64 --epochs 3 --pretrained runs/pretrain/encoder --out benchmarks/results
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
import time
from pathlib import Path

from benchmarks.machine import describe
from usfm_edge.train.config import FinetuneConfig
from usfm_edge.train.finetune import run_finetune


def epochs_for(fraction: float, base: int, cap: int) -> int:
    """The same number of optimiser steps for every fraction (base epochs at 100 %), so a
    small fraction is not also a short run."""
    return min(cap, max(base, round(base / fraction)))


def run_cell(args: argparse.Namespace, fraction: float, init: str | None, workdir: Path) -> dict:
    out = workdir / f"{'pre' if init else 'scratch'}_{fraction}"
    epochs = epochs_for(fraction, args.epochs, args.max_epochs)
    cfg = FinetuneConfig(
        task="seg", data=args.data, out=str(out), model=args.model, model_args=json.loads(args.model_args),
        init=init, img_size=args.img_size, epochs=epochs, batch_size=args.batch_size, lr=args.lr,
        label_fraction=fraction, seed=args.seed, warmup_epochs=0.5,
    )
    start = time.perf_counter()
    run_finetune(cfg, progress=False)
    evaluation = json.loads((out / "eval.json").read_text())
    return {
        "init": args.pretrained_label if init else "scratch", "fraction": fraction, "epochs": epochs,
        "train_images": json.loads((out / "subset.json").read_text())["count"],
        "dice": round(evaluation["mean"]["dice_mean"], 4), "hd95_px": round(evaluation["mean"]["hd95_mean"], 2),
        "seconds": round(time.perf_counter() - start, 1),
    }


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=120)
    for init in sorted({r["init"] for r in rows}):
        cells = sorted((r for r in rows if r["init"] == init), key=lambda r: r["fraction"])
        ax.plot([100 * r["fraction"] for r in cells], [r["dice"] for r in cells], marker="o", label=init)
    ax.set_xscale("log")
    ax.set_xlabel("training labels used (%)")
    ax.set_ylabel("test Dice")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", default="usfm_vit_t16")
    parser.add_argument("--model-args", default="{}", help='JSON, e.g. {"depth": 2}')
    parser.add_argument("--pretrained", help="Model directory or weights file for the pretrained arm.")
    parser.add_argument("--pretrained-label", default="pretrained", help="Name of that arm in the table.")
    parser.add_argument("--fractions", default="0.05,0.1,0.2,0.5,1.0")
    parser.add_argument("--img-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3, help="Epochs at 100 %% of the labels.")
    parser.add_argument("--max-epochs", type=int, default=60, help="Cap for small fractions.")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tag", default="", help="Suffix of the result files.")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    inits = [None] + ([args.pretrained] if args.pretrained else [])
    fractions = [float(f) for f in args.fractions.split(",")]
    with tempfile.TemporaryDirectory() as workdir:
        rows = [run_cell(args, f, init, Path(workdir)) for init in inits for f in fractions]
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"label_efficiency{args.tag}"
    settings = {k: v for k, v in vars(args).items() if k != "out"}
    stem.with_suffix(".json").write_text(json.dumps(
        {"benchmark": "label_efficiency", "date": dt.date.today().isoformat(), "device": "cpu",
         "machine": describe(), "settings": settings, "results": rows}, indent=2) + "\n")
    stem.with_suffix(".md").write_text(table(rows, settings))
    plot(rows, stem.with_suffix(".png"), f"{args.model} {args.img_size}px, equal step budget")
    print(table(rows, settings))


def table(rows: list[dict], settings: dict) -> str:
    lines = [f"Segmentation, {settings['model']} {settings['model_args']} at {settings['img_size']} px, equal step "
             f"budget ({settings['epochs']} epochs at 100 %), data {settings['data']}", "",
             "| init | labels (%) | train images | epochs | test Dice | HD95 (px) | time (s) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['init']} | {100 * r['fraction']:g} | {r['train_images']} | {r['epochs']} | {r['dice']} | "
              f"{r['hd95_px']} | {r['seconds']} |" for r in rows]
    return "\n".join(lines) + "\n"


def render_from_json(path: Path) -> None:
    """Rewrite the table and the plot from a result JSON (no training)."""
    result = json.loads(path.read_text())
    path.with_suffix(".md").write_text(table(result["results"], result["settings"]))
    s = result["settings"]
    plot(result["results"], path.with_suffix(".png"), f"{s['model']} {s['img_size']}px, equal step budget")


if __name__ == "__main__":
    main()
