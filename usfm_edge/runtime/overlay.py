"""Drawing results onto the captured frame: mask fill and contour, class call, the enhanced
image beside the input, and a HUD with fps and latency. RGB in, RGB out."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from usfm_edge.runtime.frame import Box

# One colour per foreground class (RGB), chosen to stand out on gray speckle.
PALETTE = ((255, 200, 0), (0, 220, 255), (255, 80, 80), (120, 255, 120), (220, 120, 255), (255, 160, 60))


def as_rgb8(image: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, 3), uint8, uint16 or float in [0, 1] (the frame contract) -> a new
    (H, W, 3) uint8 array."""
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif np.issubdtype(image.dtype, np.floating):
        image = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_RGBA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else image.copy()


def draw_mask(canvas: np.ndarray, box: Box, mask: np.ndarray, *, alpha: float = 0.35) -> None:
    """Fill each class of ``mask`` (the crop's (h, w) class indices) translucently and trace
    its outline, inside ``box`` of ``canvas`` (in place).

    Only the bounding rectangle of each class is blended: on a 1080p screen a lesion covers a
    few per cent of the crop, and blending through a boolean index of the whole crop cost
    2-3 ms a frame on the sink thread, which shares its core with preprocessing."""
    x, y, w, h = box
    roi = canvas[y:y + h, x:x + w]
    top = int(mask.max()) if mask.size else 0
    thickness = max(1, round(min(h, w) / 200))
    for k in range(1, top + 1):
        region = mask if top == 1 and mask.dtype == np.uint8 else (mask == k).view(np.uint8)
        bx, by, bw, bh = cv2.boundingRect(region)
        if bw == 0 or bh == 0:
            continue
        color = PALETTE[(k - 1) % len(PALETTE)]
        sub, inside = roi[by:by + bh, bx:bx + bw], region[by:by + bh, bx:bx + bw]
        blended = cv2.addWeighted(sub, 1.0 - alpha, np.full_like(sub, color), alpha, 0.0)
        np.copyto(sub, blended, where=inside[..., None].astype(bool))
        contours, _ = cv2.findContours(np.ascontiguousarray(inside), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE,
                                       offset=(bx, by))
        cv2.drawContours(roi, contours, -1, color, thickness, cv2.LINE_AA)


def draw_label(canvas: np.ndarray, box: Box, text: str) -> None:
    x, y, _, _ = box
    scale = max(0.5, canvas.shape[0] / 900)
    cv2.putText(canvas, text, (x + 6, y + int(28 * scale)), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 230, 0), 2,
                cv2.LINE_AA)


def draw_result(frame: np.ndarray, boxes: list[Box], outputs: list[dict[str, Any]], *,
                side_by_side: bool = True) -> np.ndarray:
    """The frame with every region's result drawn; an enhancement shows the restored image
    beside the input (or in its place when ``side_by_side`` is False)."""
    canvas = as_rgb8(frame)
    restored = None
    for box, out in zip(boxes, outputs):
        if "mask" in out:
            draw_mask(canvas, box, out["mask"])
        if "label" in out:
            draw_label(canvas, box, f"{out['label']} {out['score']:.2f}")
        if "image" in out:
            restored = canvas.copy() if restored is None else restored
            x, y, w, h = box
            restored[y:y + h, x:x + w] = as_rgb8(out["image"])
    if restored is None:
        return canvas
    return np.concatenate([canvas, restored], axis=1) if side_by_side else restored


def draw_hud(canvas: np.ndarray, fps: float, latency_ms: float, dropped: int) -> np.ndarray:
    text = f"{fps:5.1f} fps  {latency_ms:6.1f} ms  dropped {dropped}"
    scale = max(0.45, canvas.shape[0] / 1200)
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    x, y = canvas.shape[1] - tw - 10, canvas.shape[0] - 10
    cv2.rectangle(canvas, (x - 4, y - th - 6), (x + tw + 4, y + 4), (0, 0, 0), -1)
    cv2.putText(canvas, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return canvas
