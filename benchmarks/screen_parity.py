"""Validated is deployed, measured: the Dice a bundle's export gate records against the Dice
``usfm-edge run`` delivers on the same whole scanner screens, per backend.

The case a colleague measured before the one prepare path existed (the gate 0.787, the
runtime 0.625 on the same validation screens): 480x640 screens with scanner UI around a
360x360 B-mode image of a thyroid nodule, ``usfm_vit_t16`` fine-tuned at 128 px for 8 epochs,
exported to OpenVINO and ONNX Runtime INT8, run over the validation screens.

    python -m benchmarks.screen_parity --work runs/screen_parity
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from benchmarks.machine import describe
from benchmarks.store import store
from usfm_edge.contracts.manifest import BundleManifest
from usfm_edge.data.layouts import read_mask
from usfm_edge.metrics.segmentation import dice
from usfm_edge.runtime.postprocess import rle_to_mask

TARGETS = ("openvino", "onnxruntime")


def usfm_edge(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "usfm_edge", *args], check=True)


def runtime_dice(jsonl: Path, masks: Path) -> list[float]:
    """Per frame of a run's JSONL: its masks (RLE on each region's grid) pasted onto the
    screen, scored against the truth mask of the same name."""
    scores = []
    for line in jsonl.read_text().splitlines():
        record = json.loads(line)
        truth = read_mask(masks / record["name"], num_classes=2)
        pred = np.zeros(truth.shape, np.uint8)
        for region in record["regions"]:
            x, y, w, h = region["box"]
            pred[y:y + h, x:x + w] |= rle_to_mask(region["mask"])
        scores.append(dice(pred, truth))
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("runs/screen_parity"))
    parser.add_argument("--images", type=int, default=120)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    data, run = args.work / "screens", args.work / "run"
    if not (data / "labels.csv").is_file():
        usfm_edge("phantom", "--out", str(data), "--task", "seg", "--n", str(args.images), "--size", "360",
                  "--organ", "thyroid", "--ui", "--canvas", "480x640", "--seed", "1")
    if not (run / "eval.json").is_file():
        usfm_edge("finetune", "--task", "seg", "--data", str(data), "--model", "usfm_vit_t16", "--img-size", "128",
                  "--epochs", str(args.epochs), "--out", str(run), "--no-progress", "--overwrite")
    rows = []
    for target in TARGETS:
        bundle = args.work / f"bundle_{target}"
        if not (bundle / "manifest.json").is_file():
            usfm_edge("export", str(run / "model"), "--target", target, "--precision", "int8", "--calib", str(data),
                      "--val", str(data), "--out", str(bundle))
        manifest = BundleManifest.read(bundle)
        gate = manifest.validation.artifacts[manifest.artifacts[0].file]["value"]
        jsonl = args.work / f"run_{target}.jsonl"
        jsonl.unlink(missing_ok=True)
        usfm_edge("run", str(bundle), "--source", str(data / "val_set" / "image"), "--sink", f"jsonl:{jsonl}",
                  "--quiet")
        scores = runtime_dice(jsonl, data / "val_set" / "mask")
        rows.append({"target": target, "frames": len(scores), "gate_dice": round(gate, 4),
                     "runtime_dice": round(float(np.mean(scores)), 4),
                     "difference": round(float(np.mean(scores)) - gate, 5)})
    machine = describe()
    result = {"benchmark": "screen_parity", "date": dt.date.today().isoformat(), "machine": machine,
              "settings": {k: str(v) for k, v in vars(args).items()}, "results": rows}
    lines = [f"Gate Dice (in the bundle's manifest) against `usfm-edge run` on the same {rows[0]['frames']} "
             "validation screens (480x640, scanner UI around a 360x360 thyroid B-mode image; usfm_vit_t16 at 128 px, "
             f"{args.epochs} epochs, INT8). {machine['cpu']}, {result['date']}.", "",
             "| bundle | gate Dice | runtime Dice | runtime - gate |", "|---|---:|---:|---:|"]
    lines += [f"| {r['target']} int8 | {r['gate_dice']:.4f} | {r['runtime_dice']:.4f} | {r['difference']:+.5f} |"
              for r in rows]
    store(args.out / "screen_parity", result, lines)


if __name__ == "__main__":
    main()
