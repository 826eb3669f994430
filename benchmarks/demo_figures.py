"""The demo's figures for the README: runs ``usfm-edge demo`` (fast and full) in a scratch
folder and stores each run's ``summary.json`` and a table under ``benchmarks/results/``.

    python -m benchmarks.demo_figures [--modes fast,full] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from usfm_edge.demo import plan_for, run_demo

RESULTS = Path(__file__).parent / "results"


def rows(summary: dict) -> list[str]:
    dice, run = summary["dice"], summary["run"]
    export = summary["export"]["backends"]
    lines = [f"| wall time | {summary['wall_s']:.0f} s |",
             f"| teacher fp32, test Dice ({summary['teacher']['labelled_frames']} labelled frames) | "
             f"{dice['teacher_fp32']:.3f} |",
             f"| student fp32 ({summary['models']['macs_ratio']:.1f}x fewer MACs) | {dice['student_fp32']:.3f} |"]
    for backend, value in dice["student_int8"].items():
        lines.append(f"| student INT8, {backend} (gate {export[backend]['status']}, drop "
                     f"{export[backend]['drop']:+.4f}) | {value:.3f} |")
    lines.append(f"| Dice over the cine in scanner UI ({run['backend']}, {run['frames']} frames) | "
                 f"{run['dice_mean']:.3f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", default="fast,full")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    for mode in args.modes.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "demo"
            run_demo(out, plan_for(fast=mode == "fast"), threads=args.threads, progress=False)
            shutil.copy(out / "summary.json", RESULTS / f"demo_{mode}.json")
        summary = json.loads((RESULTS / f"demo_{mode}.json").read_text())
        text = "\n".join([f"`usfm-edge demo{' --fast' if mode == 'fast' else ''}`, {args.threads} thread(s), "
                          f"{summary['machine']['cpu']}, {summary['created'][:10]} (synthetic phantom data)", "",
                          "| | |", "|---|---:|", *rows(summary)]) + "\n"
        (RESULTS / f"demo_{mode}.md").write_text(text)
        print(text)


if __name__ == "__main__":
    main()
