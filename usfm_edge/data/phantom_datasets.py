"""Write phantom datasets in the project's layouts, and phantom cines as video and DICOM.

Every task of the pipeline can then be trained and tested offline with exact ground truth:
segmentation masks, benign/malignant labels, clean enhancement targets, multi-organ
pretraining manifests, and cines with the scan-region box and spacing the runtime's region
detection is checked against.

With ``ui`` (``usfm-edge phantom --ui --canvas HxW``) segmentation, classification and
enhancement images are whole scanner screens, what a capture card delivers: the B-mode image
inside UI chrome, masks and targets on the screen's grid, and ``screens.csv`` giving each
image's box (x, y, w, h) on its screen.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np

from usfm_edge.data.dicom import UltrasoundRegion
from usfm_edge.data.dicom_write import write_dicom
from usfm_edge.data.layouts import SEG_SPLITS, ManifestEntry, write_manifest
from usfm_edge.data.phantom import PhantomConfig, PhantomFrame, add_ui_chrome, list_organs, render, render_cine
from usfm_edge.data.video import write_video

TASKS = ("seg", "cls", "enhance", "pretrain", "cine")


def split_names(n: int, fractions: tuple[float, float, float], rng: np.random.Generator) -> list[str]:
    """Assign each of n items to train/val/test with the given fractions (at least one each
    when n >= 3), in a seeded random order."""
    counts = [max(1, round(n * f)) if n >= 3 else 0 for f in fractions[1:]]
    names = ["val"] * counts[0] + ["test"] * counts[1]
    names = ["train"] * (n - len(names)) + names
    return [names[i] for i in rng.permutation(n)]


def _save(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"{path}: could not write")


@dataclasses.dataclass(frozen=True)
class Screen:
    """Where phantom images go: as they are, or into scanner screens of ``canvas`` (H, W)."""

    ui: bool = False
    canvas: tuple[int, int] = (480, 640)
    seed: int = 0

    def place(self, i: int, frame: PhantomFrame,
              *layers: tuple[np.ndarray, bool]) -> tuple[list[np.ndarray], tuple[int, ...]]:
        """``layers`` ((image, is_mask) on the frame's grid) on screen ``i``, and the image's
        box (x, y, w, h) there. Images get the same chrome (so a clean target matches its
        degraded image outside the B-mode area); a mask (uint8 0/255 or indices) is scaled
        by nearest neighbour and is zero outside the image. The first layer is an image."""
        h, w = frame.image.shape[:2]
        if not self.ui:
            return [layer for layer, _ in layers], (0, 0, w, h)
        placed, box = [], None
        for layer, is_mask in layers:
            if is_mask:
                x, y, bw, bh = box
                screen = np.zeros(self.canvas, layer.dtype)
                screen[y:y + bh, x:x + bw] = cv2.resize(layer, (bw, bh), interpolation=cv2.INTER_NEAREST)
            else:
                screen, box = add_ui_chrome(layer, canvas_size=self.canvas, rng=(self.seed, i),
                                            depth_cm=frame.depth_cm, scale=None)
            placed.append(screen)
        return placed, box

    def spacing(self, frame: PhantomFrame, box: tuple[int, ...]) -> float:
        return frame.spacing_mm * frame.image.shape[0] / box[3]


class _Boxes:
    """``screens.csv``: each screen's image box, the truth region detection is checked on."""

    def __init__(self, screen: Screen) -> None:
        self.screen, self.rows = screen, ["split,id,x,y,w,h"]

    def add(self, split: str, name: str, box: tuple[int, ...]) -> None:
        self.rows.append(f"{split},{name}," + ",".join(map(str, box)))

    def write(self, out: Path) -> None:
        if self.screen.ui:
            (out / "screens.csv").write_text("\n".join(self.rows) + "\n")


def write_seg(out: Path, base: PhantomConfig, n: int, seed: int, fractions, on_item: Callable, *,
              screen: Screen = Screen()) -> None:
    rng = np.random.default_rng(seed)
    config = dataclasses.replace(base, n_lesions=(1, max(1, base.n_lesions[1])))
    rows, boxes = ["split,id,pixel_size_mm"], _Boxes(screen)
    for i, split in enumerate(split_names(n, fractions, rng)):
        frame = render(config, rng)
        name, folder = f"{i:05d}", out / SEG_SPLITS[split]
        (image, mask), box = screen.place(i, frame, (frame.image, False), (((frame.mask > 0) * 255).astype(np.uint8),
                                                                             True))
        _save(folder / "image" / f"{name}.png", image)
        _save(folder / "mask" / f"{name}.png", mask)
        rows.append(f"{SEG_SPLITS[split]},{name},{screen.spacing(frame, box):.6f}")
        boxes.add(SEG_SPLITS[split], name, box)
        on_item()
    (out / "labels.csv").write_text("\n".join(rows) + "\n")
    boxes.write(out)


def write_cls(out: Path, base: PhantomConfig, n: int, seed: int, fractions, on_item: Callable, *,
              screen: Screen = Screen()) -> None:
    """Benign and malignant alternate, so the classes stay balanced in every split."""
    rng = np.random.default_rng(seed)
    boxes = _Boxes(screen)
    for i, split in enumerate(split_names(n, fractions, rng)):
        malignant = i % 2 == 1
        frame = render(dataclasses.replace(base, n_lesions=(1, 1), p_malignant=float(malignant)), rng)
        (image,), box = screen.place(i, frame, (frame.image, False))
        _save(out / split / ("malignant" if malignant else "benign") / f"{i:05d}.png", image)
        boxes.add(split, f"{i:05d}", box)
        on_item()
    boxes.write(out)


def write_enhance(out: Path, base: PhantomConfig, n: int, seed: int, fractions, on_item: Callable, *,
                  screen: Screen = Screen()) -> None:
    rng = np.random.default_rng(seed)
    boxes = _Boxes(screen)
    for i, split in enumerate(split_names(n, fractions, rng)):
        frame = render(base, rng)
        folder = out / SEG_SPLITS[split]
        (image, target), box = screen.place(i, frame, (frame.image, False), (frame.clean, False))
        _save(folder / "image" / f"{i:05d}.png", image)
        _save(folder / "target" / f"{i:05d}.png", target)
        boxes.add(SEG_SPLITS[split], f"{i:05d}", box)
        on_item()
    boxes.write(out)


def write_pretrain(out: Path, base: PhantomConfig, n: int, seed: int, fractions, on_item: Callable, *,
                   organs: list[str] | None = None) -> None:
    """Unlabeled frames and their manifest; ``organs`` (default: every preset) are drawn
    unevenly, 2:1 from first to last, as real archives are (organ-balanced sampling has
    something to balance). Each organ uses its own probe geometry."""
    rng = np.random.default_rng(seed)
    organs = organs or list_organs()
    weights = np.linspace(2.0, 1.0, len(organs))
    entries = []
    for i in range(n):
        organ = organs[rng.choice(len(organs), p=weights / weights.sum())]
        frame = render(dataclasses.replace(base, organ=organ, geometry=None), rng)
        path = out / "images" / organ / f"{i:05d}.png"
        _save(path, frame.image)
        entries.append(ManifestEntry(path, organ))
        on_item()
    write_manifest(out / "manifest.csv", entries)


def write_cine(out: Path, base: PhantomConfig, n: int, seed: int, fractions, on_item: Callable, *,
               fps: float = 20.0, ui: bool = True, canvas: tuple[int, int] = (480, 640),
               photometric: str = "MONOCHROME2", rle: bool = True) -> None:
    """``n`` frames as cine.mp4 and cine.dcm (with the ultrasound region and spacing; gray,
    RGB, YBR_FULL or palette colour; RLE or raw), per-frame lesion masks in masks/, and
    truth.json (region box, spacing, fps)."""
    frames: list[np.ndarray] = []
    box = (0, 0, base.size[1], base.size[0])
    spacing = None
    for t, frame in enumerate(_cine(base, n, seed)):
        image = frame.image
        if ui:
            image, box = add_ui_chrome(frame.image, canvas_size=canvas, rng=seed, depth_cm=frame.depth_cm, scale=None)
        frames.append(image)
        spacing = frame.spacing_mm * base.size[0] / box[3]  # chrome may scale the frame to fit
        _save(out / "masks" / f"{t:05d}.png", ((frame.mask > 0) * 255).astype(np.uint8))
        on_item()
    stack = np.stack(frames)
    write_video(out / "cine.mp4", stack, fps=fps)
    x, y, w, h = box
    region = UltrasoundRegion(x, y, x + w - 1, y + h - 1, data_type=1, spatial_format=1, spacing_mm=(spacing, spacing))
    gray = stack if stack.ndim == 3 else stack[..., 0]
    color = photometric in ("RGB", "YBR_FULL")
    write_dicom(out / "cine.dcm", np.repeat(gray[..., None], 3, -1) if color else gray, fps=fps,
                photometric=photometric, rle=rle, regions=[region])
    (out / "truth.json").write_text(json.dumps(
        {"region_xywh": list(box), "spacing_mm": spacing, "fps": fps, "frames": len(frames),
         "organ": base.organ, "masks": "masks/NNNNN.png (in the B-mode image's own pixels)"}, indent=2) + "\n")


def _cine(base: PhantomConfig, n: int, seed: int) -> Iterator[PhantomFrame]:
    yield from render_cine(dataclasses.replace(base, n_lesions=(1, max(1, base.n_lesions[1]))), n, seed)


WRITERS: dict[str, Callable] = {
    "seg": write_seg, "cls": write_cls, "enhance": write_enhance, "pretrain": write_pretrain, "cine": write_cine,
}


def write_phantom_dataset(task: str, out: str | Path, *, n: int, config: PhantomConfig, seed: int = 0,
                          fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
                          on_item: Callable[[], None] = lambda: None, **kwargs) -> Path:
    """Write ``n`` items (frames, for a cine) of ``task`` under ``out``."""
    if task not in WRITERS:
        raise ValueError(f"task {task!r}; use one of {TASKS}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    WRITERS[task](out, config, n, seed, fractions, on_item, **kwargs)
    return out


__all__ = ["TASKS", "Screen", "write_phantom_dataset"]
