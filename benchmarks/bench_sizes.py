"""Size sweep: ViT-Ti/16, -S/16 and -B/16 segmentation models x every CPU backend x
precision through ``usfm-edge bench``, with each cell's achieved operations per second against
this CPU's peak measured in the same run (``benchmarks.cpu_peak``).

    python -m benchmarks.bench_sizes --sizes t16,s16,b16 --img-size 224 --iters 20 --threads 2

Every model's cells run ``--rounds`` times in turn and each figure is the median over the
rounds (the fastest run: the minimum), so a burst of other work on a shared machine spoils one
round, not the figure.

Models: freshly initialised (speed only: no task metric is reported), the same light
segmentation head on every encoder so that only the encoder's size changes. Each model is
exported to every bundle its cells need (int8 calibrated on ``--calib``, by default the shared
unlabeled HC18 frames) and measured cell by cell, each in its own process. Achieved ops/s =
2 x the model's multiply-accumulates per frame (torch's FLOP counter) / the p50 latency
(and / the fastest run: on a shared machine other processes only ever slow a run down, so
the fastest run and the best GEMM are the comparable pair); ``of peak`` divides it by the
measured GEMM peak of the precision the cell runs in (int8 cells by the int8 peak, although
their softmax, LayerNorm and residual adds stay in float).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
import textwrap
from pathlib import Path

from benchmarks.cpu_peak import best_of, measure_peaks
from benchmarks.deploy_common import (
    calibration_folder,
    gpu_device,
    markdown,
    merge_rounds,
    model_gmacs,
    peak_kind,
    r,
    untrained_model_dir,
)
from benchmarks.store import store
from usfm_edge.bench import run_bench
from usfm_edge.bench.machine import describe
from usfm_edge.bench.report import label


def sweep(args: argparse.Namespace, scratch: Path, device: str, backends: str) -> list[dict]:
    calib = calibration_folder(args.calib, scratch, size=args.img_size)
    rows = []
    for size in args.sizes.split(","):
        arch = f"usfm_vit_{size}"
        model_dir = untrained_model_dir(arch, scratch / arch, img_size=args.img_size, head=args.head)
        gmacs, params = model_gmacs(model_dir)
        docs = [run_bench(model_dir, backends=backends.split(","), precisions=args.precisions.split(","),
                          threads=args.threads, warmup=args.warmup, iters=args.iters, batch_size=args.batch_size,
                          calib=calib, calib_limit=args.calib_limit, work=scratch / f"{arch}_bundles", device=device,
                          vendor_tools=args.vendor and k == 0,  # the vendor tools once, beside the first round
                          progress=lambda m, a=arch, k=k: print(f"{a} round {k + 1}: {m}", flush=True))
                for k in range(args.rounds)]
        for cell in merge_rounds(docs):
            row = {"model": arch, "params_m": params, "gmacs": gmacs, "backend": cell["backend"],
                   "precision": cell["precision"], "status": cell["status"], "reason": cell["reason"]}
            if cell["status"] == "ok":
                lat = cell["latency"]
                row.update(runs_in=cell["runs_in"], float_precision=cell["float_precision"], load_s=r(cell["load_s"]),
                           p50_ms=r(lat["p50_ms"]), p90_ms=r(lat["p90_ms"]), p99_ms=r(lat["p99_ms"]),
                           min_ms=r(lat["min_ms"]), best_gops=r(2 * gmacs / (lat["min_ms"] / 1e3), 1),
                           fps=r(lat["fps"], 1), batch_fps=r((cell["batch"] or {}).get("fps"), 1),
                           peak_rss_mb=cell["peak_rss_mb"], parity_max_rel=cell["parity"]["max_rel"],
                           achieved_gops=r(2 * gmacs / (lat["p50_ms"] / 1e3), 1), peak_kind=peak_kind(cell),
                           vendor_ratio=r((cell["vendor"] or {}).get("ratio"), 3),
                           vendor_ratio_min=r((cell["vendor"] or {}).get("ratio_min"), 3),
                           rounds_p50_ms=[r(v) for v in cell["rounds_p50_ms"]])
            rows.append(row)
    return rows


def add_peak_fractions(rows: list[dict], peaks: dict) -> None:
    for row in rows:
        if row["status"] == "ok":
            row["peak_gops"] = (peaks.get(row["peak_kind"]) or {}).get("peak_gops")
            row["of_peak"] = r(row["achieved_gops"] / row["peak_gops"], 3) if row["peak_gops"] else None
            row["best_of_peak"] = r(row["best_gops"] / row["peak_gops"], 3) if row["peak_gops"] else None


def table(rows: list[dict]) -> list[str]:
    def share(value: float | None) -> str:
        return "" if value is None else f"{value:.0%}"

    body = [[row["model"], row["gmacs"], label(row), row["load_s"], row["p50_ms"], row["p90_ms"], row["p99_ms"],
             row["min_ms"], row["peak_rss_mb"], f"{row['parity_max_rel']:.1e}", row["achieved_gops"],
             share(row.get("of_peak")), share(row.get("best_of_peak")),
             f"{row['vendor_ratio']} ({row['vendor_ratio_min']})" if row["vendor_ratio"] else ""]
            for row in rows if row["status"] == "ok"]
    return markdown(["model", "GMACs", "cell (runs in)", "load s", "p50 ms", "p90 ms", "p99 ms", "min ms", "peak MiB",
                     "parity max rel", "GOPS at p50", "of peak at p50", "of peak at min",
                     "ours / benchmark_app: p50 (min)"], body, align="---|---:|---|" + "|".join(["---:"] * 11))


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [row for row in rows if row["status"] == "ok"]
    models = list(dict.fromkeys(row["model"] for row in ok))
    cells = list(dict.fromkeys((row["backend"], row["precision"]) for row in ok))
    fig, ax = plt.subplots(figsize=(9, 4.8))
    width = 0.8 / max(1, len(cells))
    for j, (backend, precision) in enumerate(cells):
        values = [next((row["p50_ms"] for row in ok if (row["model"], row["backend"], row["precision"])
                        == (m, backend, precision)), 0) for m in models]
        first = next(row for row in ok if (row["backend"], row["precision"]) == (backend, precision))
        ax.bar([i + (j - (len(cells) - 1) / 2) * width for i in range(len(models))], values, width, label=label(first))
    ax.set_yscale("log")
    ax.set_xticks(range(len(models)), models)
    ax.set_ylabel("p50 latency, batch 1 (ms, log)")
    ax.set_title(textwrap.fill(title, 110), fontsize=8)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="t16,s16,b16")
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--head", default="light_seg")
    parser.add_argument("--backends", default="onnxruntime,openvino,torch")
    parser.add_argument("--gpu-backends", default="torch,onnxruntime,tensorrt", help="when a GPU is present")
    parser.add_argument("--precisions", default="fp32,fp16,int8")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--iters", type=int, default=10, help="timed runs per cell per round")
    parser.add_argument("--rounds", type=int, default=3, help="every cell this many times, in turn; medians kept")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--calib", type=Path, help="int8 calibration frames (default: ../shared/data/hc18_unlabeled, "
                        "else phantom frames)")
    parser.add_argument("--calib-limit", type=int, default=64)
    parser.add_argument("--peak-size", type=int, default=2048)
    parser.add_argument("--vendor", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--tag", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    machine = describe()
    before = measure_peaks(size=args.peak_size, threads=args.threads)
    with tempfile.TemporaryDirectory(prefix="usfm-sizes-") as scratch:
        rows = sweep(args, Path(scratch), "CPU", args.backends)
        peaks = best_of(before, measure_peaks(size=args.peak_size, threads=args.threads))  # before and after
        add_peak_fractions(rows, peaks["peaks"])
        gpu = gpu_device()
        # on a GPU the achieved ops/s have no measured peak here: latency, memory and parity only
        gpu_rows = sweep(args, Path(scratch), "GPU", args.gpu_backends) if gpu else []
    result = {
        "benchmark": "bench_sizes", "date": dt.date.today().isoformat(), "machine": machine,
        "weights": "untrained (random initialisation): speed, memory and parity only; no task metric",
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "peak": peaks, "results": rows,
        "gpu": {"device": gpu, "results": gpu_rows} if gpu else {"device": None, "note": "no GPU on this machine"},
    }
    stem = args.out / f"bench_sizes_{args.tag}_{args.img_size}"
    head = (f"Size sweep, {args.img_size}x{args.img_size} gray, batch 1, {args.threads} threads, "
            f"{args.iters} iters x {args.rounds} rounds, "
            f"{machine['cpu']} ({', '.join(machine['cpu_flags'])}), {result['date']}; untrained weights (speed only)")
    lines = [head, ""]
    lines += table(rows)
    lines += ["", "Peaks (GEMM " + f"{args.peak_size}^3, best of {peaks['reps']} x 2, before and after the sweep): "
              + ", ".join(f"{k} {v['peak_gops']} GOPS ({v['by']})" for k, v in peaks["peaks"].items())]
    skipped = sorted({f"{row['backend']} {row['precision']}: {row['reason']}" for row in rows if row["status"] != "ok"})
    lines += ["", "Not measured:"] + [f"- {s}" for s in skipped] if skipped else []
    lines += ["", "GPU: " + (gpu if gpu else "none on this machine; the same script fills this section on one")]
    lines += table(gpu_rows) if gpu_rows else []
    store(stem, result, lines)
    plot(rows, stem.with_suffix(".png"), head)


if __name__ == "__main__":
    main()
