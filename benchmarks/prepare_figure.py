"""The prepare contract as a picture (README, "One prepare path"): a captured scanner screen ->
the scan region and its imaging sector -> the crop -> the network input -> the mask back on the
screen, each panel made by the functions every stage calls (``usfm_edge.contracts.prepare``).

The network output here is synthetic, so the picture needs no trained model: the phantom's
true lesion plus a spurious finding in the black corner outside the fan, which the sector rule
clears.

    python -m benchmarks.prepare_figure --out docs/prepare_contract.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from usfm_edge.contracts import Preprocess
from usfm_edge.contracts.prepare import locate, paste, preprocess_frame, resize_label_map, segment_frame
from usfm_edge.data.phantom import PhantomConfig, add_ui_chrome, render
from usfm_edge.runtime.overlay import as_rgb8, draw_mask

PANEL_H = 300
SHADE = np.array([200, 40, 40], np.float32)  # outside the sector (RGB)


def synthetic_logits(truth_crop: np.ndarray, spec: Preprocess) -> np.ndarray:
    """(2, h, w): the true lesion and a blob in the crop's top-left corner, confident."""
    labels = resize_label_map((truth_crop > 0).astype(np.uint8), spec)
    h, w = spec.input_size
    cv2.circle(labels, (w // 10, h // 8), max(2, w // 16), 1, -1)
    fg = np.where(labels > 0, 6.0, -6.0).astype(np.float32)
    return np.stack([-fg, fg])


def label(panel: np.ndarray, text: str) -> np.ndarray:
    scale = PANEL_H / panel.shape[0]
    panel = cv2.resize(panel, (round(panel.shape[1] * scale), PANEL_H), interpolation=cv2.INTER_AREA)
    bar = np.full((34, panel.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, text, (6, 23), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([bar, panel])


def arrow() -> np.ndarray:
    tile = np.full((PANEL_H + 34, 36, 3), 255, np.uint8)
    mid = 34 + PANEL_H // 2
    cv2.arrowedLine(tile, (4, mid), (31, mid), (60, 60, 60), 2, cv2.LINE_AA, tipLength=0.4)
    return tile


def figure() -> np.ndarray:
    frame = render(PhantomConfig(size=(256, 256), organ="liver", n_lesions=(1, 1)), rng=7)
    screen, box = add_ui_chrome(frame.image, canvas_size=(480, 640), rng=7, depth_cm=frame.depth_cm, scale=None)
    truth = np.zeros(screen.shape, np.uint8)
    x, y, w, h = box
    truth[y:y + h, x:x + w] = cv2.resize(frame.mask, (w, h), interpolation=cv2.INTER_NEAREST)
    spec = Preprocess(input_size=(224, 224))
    view = locate(screen, spec)

    captured = as_rgb8(screen)
    region = captured.copy()
    vx, vy, vw, vh = view.box
    crop_rgb = region[vy:vy + vh, vx:vx + vw]
    outside = ~view.sector
    crop_rgb[outside] = (crop_rgb[outside] * 0.45 + SHADE * 0.55).astype(np.uint8)
    cv2.rectangle(region, (vx, vy), (vx + vw - 1, vy + vh - 1), (0, 200, 0), 2)

    x_in = preprocess_frame(view.crop(screen), spec)[0, 0]
    network_input = as_rgb8(np.clip((x_in - x_in.min()) / (np.ptp(x_in) or 1) * 255, 0, 255).astype(np.uint8))
    logits = synthetic_logits(view.crop(truth), spec)
    output = network_input.copy()
    draw_mask(output, (0, 0, 224, 224), (logits[1] > 0).astype(np.uint8))

    mask = segment_frame(logits, view, spec, screen.shape)
    on_screen = as_rgb8(screen)
    draw_mask(on_screen, view.box, view.crop(mask))
    assert mask[paste(outside.astype(np.uint8), view, screen.shape) > 0].sum() == 0

    panels = [label(captured, "1 captured screen"), label(region, "2 scan region + sector"),
              label(network_input, "3 crop -> input 224x224"), label(output, "4 output (synthetic)"),
              label(on_screen, "5 mask on the screen")]
    row = [panels[0]]
    for panel in panels[1:]:
        row += [arrow(), panel]
    return np.concatenate(row, axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/prepare_contract.png"))
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(figure(), cv2.COLOR_RGB2BGR))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
