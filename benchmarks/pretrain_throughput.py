"""Pretraining throughput per objective and model size, and the cost of the SF-MIM
corruptions against a plain SimMIM step, measured side by side in one process.

Each cell times whole optimiser steps (corruption, forward, backward, AdamW) on random
frames already in memory, so data loading is not what is measured. "simmim" is the same
wrapper with the frequency half and the noise switched off: block mask + mean fill only.

    python -m benchmarks.pretrain_throughput --models usfm_vit_t16,usfm_vit_s16 --img-size 224 --batch-size 8
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time
from pathlib import Path

import torch

from benchmarks.machine import describe
from benchmarks.store import store
from usfm_edge.models import create_model
from usfm_edge.contracts import GRAY_MEAN, GRAY_STD
from usfm_edge.train.precision import autocast_dtype
from usfm_edge.train.pretrain.engine import param_groups, train_step
from usfm_edge.train.pretrain.masking import block_mask
from usfm_edge.train.pretrain.objectives import create_objective

VARIANTS = {
    "simmim": ("sfmim", {"spatial_fraction": 1.0, "speckle_sigma": 0.0, "gaussian_sigma": 0.0}),
    "sfmim": ("sfmim", {}),
    "mae": ("mae", {}),
}


def time_variant(model: str, variant: str, args: argparse.Namespace, device: torch.device) -> dict:
    name, extra = VARIANTS[variant]
    encoder = create_model(model, img_size=args.img_size, in_chans=1)
    objective = create_objective(name, encoder, mean=GRAY_MEAN, std=GRAY_STD, **extra).to(device).train()
    optimizer = torch.optim.AdamW(param_groups(objective, 0.05), lr=1e-4)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    dtype = autocast_dtype(args.precision, device)
    scaler = torch.amp.GradScaler(device.type, enabled=False)
    grid = (args.img_size // 32,) * 2
    import numpy as np

    rng = np.random.default_rng(0)
    batch = {"image": torch.rand(args.batch_size, 1, args.img_size, args.img_size),
             "mask": torch.from_numpy(np.stack([block_mask(grid, 0.6, rng) for _ in range(args.batch_size)]))}
    generator = torch.Generator().manual_seed(0)
    times = []
    for i in range(args.warmup + args.steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        train_step(objective, [batch], optimizer, scheduler, scaler, dtype, device, generator, accum=1, no_sync=False)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
    step = statistics.median(times)
    return {"model": model, "objective": variant, "step_s": round(step, 4),
            "img_per_s": round(args.batch_size / step, 2), "steps": args.steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="usfm_vit_t16,usfm_vit_s16")
    parser.add_argument("--objectives", default="simmim,sfmim,mae")
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--tag", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    rows = []
    for model in args.models.split(","):
        # the variants of one model run back to back, so their ratio shares the machine's state
        cells = {v: time_variant(model, v, args, device) for v in args.objectives.split(",")}
        if "simmim" in cells and "sfmim" in cells:
            cells["sfmim"]["cost_vs_simmim"] = round(cells["sfmim"]["step_s"] / cells["simmim"]["step_s"], 3)
        rows.extend(cells.values())
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else describe()["cpu"]
    result = {"benchmark": "pretrain_throughput", "date": dt.date.today().isoformat(), "device": device_name,
              "machine": describe(), "settings": {k: v for k, v in vars(args).items() if k != "out"}, "results": rows}
    stem = args.out / f"pretrain_throughput_{args.tag}"
    lines = [f"Pretraining step throughput, {args.img_size} px, batch {args.batch_size}, {device_name} "
             f"({result['date']})", "", "| model | objective | step (s) | img/s | cost vs SimMIM |", "|---|---|---:|---:|---:|"]
    lines += [f"| {r['model']} | {r['objective']} | {r['step_s']} | {r['img_per_s']} | {r.get('cost_vs_simmim', '')} |"
              for r in rows]
    store(stem, result, lines)


if __name__ == "__main__":
    main()
