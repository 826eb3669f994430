"""Wall time and test metrics of one fine-tuning run, for the figures the README quotes.

    python -m benchmarks.finetune_run --data ../shared/data/hc18 --model usfm_vit_t16 --img-size 128 \\
        --epochs 3 --tag hc18_t16_128
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="seg")
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", default="usfm_vit_t16")
    parser.add_argument("--model-args", default="{}")
    parser.add_argument("--img-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--tag", default="run")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = FinetuneConfig(task=args.task, data=args.data, out=tmp, model=args.model,
                             model_args=json.loads(args.model_args), img_size=args.img_size, epochs=args.epochs,
                             batch_size=args.batch_size, previews=0)
        start = time.perf_counter()
        run_finetune(cfg, progress=False)
        seconds = time.perf_counter() - start
        evaluation = json.loads((Path(tmp) / "eval.json").read_text())
    summary = evaluation.get("mean", {k: v for k, v in evaluation.items() if k not in ("confusion_matrix", "split")})
    result = {"benchmark": "finetune_run", "date": dt.date.today().isoformat(), "device": "cpu", "machine": describe(),
              "settings": {k: v for k, v in vars(args).items() if k != "out"}, "seconds": round(seconds, 1),
              "split": evaluation["split"], "metrics": {k: round(v, 4) for k, v in summary.items()}}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"finetune_{args.tag}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("seconds", "split", "metrics")}, indent=2))


if __name__ == "__main__":
    main()
