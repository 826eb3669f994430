"""Fine-tuning step throughput in fp32 and under bf16 autocast, side by side in one process.

Each cell runs ``usfm_edge.train.finetune.supervised_step``, the step fine-tuning runs
(forward, loss, backward, gradient clipping, AdamW, scheduler), on random frames already in
memory, so data loading is not what is measured. Rounds alternate fp32 and bf16 so a burst of other work on
a shared machine spoils both alike; the ratio is the median of the rounds' ratios.

    python -m benchmarks.train_precision --models usfm_vit_s16:light_seg,usfm_vit_s16:upernet --img-size 224
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
from usfm_edge.models import build_task_model, make_config
from usfm_edge.train.finetune import supervised_step
from usfm_edge.train.losses import task_loss
from usfm_edge.train.optim import build_optimizer, warmup_cosine


def images_per_second(model, batches: list[dict], precision: str) -> float:
    """Median img/s over the steps after the first (which pays one-off allocation)."""
    optimizer = build_optimizer(model, lr=1e-4, weight_decay=0.05, layer_decay=1.0)
    scheduler = warmup_cosine(optimizer, total_steps=len(batches), warmup_steps=0, base_lr=1e-4, min_lr=1e-6)
    loss_fn, rates = task_loss("seg"), []
    for batch in batches:
        start = time.perf_counter()
        _, images = supervised_step(model, batch, loss_fn, optimizer, scheduler, torch.device("cpu"), precision)
        rates.append(images / (time.perf_counter() - start))
    return statistics.median(rates[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="usfm_vit_s16:light_seg,usfm_vit_s16:upernet,usfm_vit_t16:light_seg",
                        help="ARCH:HEAD pairs")
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=4, help="steps per cell and round (the first is not counted)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(0)
    batches = [{"image": torch.randn(args.batch_size, 1, args.img_size, args.img_size, generator=generator),
                "target": (torch.rand(args.batch_size, args.img_size, args.img_size, generator=generator) > 0.5).long()}
               for _ in range(args.steps)]
    rows = []
    for pair in args.models.split(","):
        arch, head = pair.split(":")
        model = build_task_model(make_config(arch, "seg", labels=["background", "head"], img_size=args.img_size,
                                             head=head))
        rounds = [{p: images_per_second(model, batches, p) for p in ("fp32", "bf16")} for _ in range(args.rounds)]
        row = {"model": arch, "head": head,
               "fp32_img_per_s": round(statistics.median(r["fp32"] for r in rounds), 2),
               "bf16_img_per_s": round(statistics.median(r["bf16"] for r in rounds), 2),
               "bf16_speedup": round(statistics.median(r["bf16"] / r["fp32"] for r in rounds), 2),
               "rounds": [{k: round(v, 2) for k, v in r.items()} for r in rounds]}
        rows.append(row)
        print(row, flush=True)
    machine = describe()
    result = {"benchmark": "train_precision", "date": dt.date.today().isoformat(), "machine": machine,
              "settings": {k: str(v) for k, v in vars(args).items()}, "results": rows}
    lines = [f"Fine-tuning steps (segmentation, {args.img_size} px, batch {args.batch_size}), fp32 vs bf16 autocast, "
             f"{machine['cpu']}, {torch.get_num_threads()} threads ({result['date']})", "",
             "| model | head | fp32 img/s | bf16 img/s | bf16 speed-up |", "|---|---|---:|---:|---:|"]
    lines += [f"| {r['model']} | {r['head']} | {r['fp32_img_per_s']} | {r['bf16_img_per_s']} | {r['bf16_speedup']}x |"
              for r in rows]
    store(args.out / "train_precision_cpu", result, lines)


if __name__ == "__main__":
    main()
