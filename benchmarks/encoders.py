"""Torch eager latency of the registered USFM encoders on this machine (batch 1, fp32).

The baseline the export stage's speed-ups are measured against. Each model: warm-up runs,
then the median and p90 of timed ``forward_features`` calls.

    python -m benchmarks.encoders --img-size 224 --iters 10 --out benchmarks/results
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
from usfm_edge.models import create_model, list_models


def time_model(name: str, img_size: int, in_chans: int, warmup: int, iters: int) -> dict:
    model = create_model(name, img_size=img_size, in_chans=in_chans).eval()
    x = torch.randn(1, in_chans, img_size, img_size)
    with torch.inference_mode():
        for _ in range(warmup):
            model.forward_features(x)
        times = []
        for _ in range(iters):
            start = time.perf_counter()
            model.forward_features(x)
            times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    return {
        "model": name,
        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "p50_ms": round(statistics.median(times), 2),
        "p90_ms": round(times[min(len(times) - 1, int(0.9 * len(times)))], 2),
        "iters": iters,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--in-chans", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [time_model(n, args.img_size, args.in_chans, args.warmup, args.iters) for n in list_models()]
    result = {
        "benchmark": "encoders_torch_eager",
        "date": dt.date.today().isoformat(),
        "device": "cpu",
        "machine": describe(),
        "settings": {"img_size": args.img_size, "in_chans": args.in_chans, "batch": 1, "precision": "fp32",
                     "threads": args.threads, "warmup": args.warmup},
        "results": rows,
    }
    stem = args.out / f"encoders_cpu_{args.img_size}"
    lines = [f"Torch eager fp32, batch 1, {args.img_size}x{args.img_size}x{args.in_chans}, "
             f"{args.threads} threads, {result['machine']['cpu']} ({result['date']})", "",
             "| encoder | params (M) | p50 (ms) | p90 (ms) |", "|---|---:|---:|---:|"]
    lines += [f"| {r['model']} | {r['params_m']} | {r['p50_ms']} | {r['p90_ms']} |" for r in rows]
    store(stem, result, lines)


if __name__ == "__main__":
    main()
