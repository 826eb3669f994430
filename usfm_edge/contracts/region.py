"""Scan-region detection: where the B-mode image and its imaging sector sit in a scanner's
screen, and when they move. Part of the one prepare path (``usfm_edge.contracts.prepare``):
training, calibration, the export gate and the runtime all find the region with this code.

A capture card delivers the whole screen: the B-mode image (a fan or a rectangle of speckle)
inside UI chrome (dark background, text, logo bar, gray bar, depth ruler). Detection works on
a copy about ``_WORK_SIZE`` px on its long side:

1. A full-resolution erosion wipes out everything thinner than a few pixels (text strokes,
   ruler lines and ticks, calipers) before the downscale could smear them into solid blobs.
2. Background = the darkest flat colour on the frame border; content = anything brighter by
   more than the noise. Only brighter: the black outside a fan counts as background even when
   the screen is a shade lighter, and a fan drawn one level above black (Philips does) still
   counts as image.
3. An opening removes what the erosion left of thin chrome; the largest connected component
   is the image, joined by large textured components beside it (dual-mode screens).
4. The imaging sector (the fan of a curvilinear or phased probe, the rectangle of a linear
   one) inside that box: straight sides fitted robustly to each row's first and last echo
   (Theil-Sen, so a dark lesion or shadow at an edge is an outlier, not a dent), the far edge
   a quadratic fitted to each column's deepest echo (shadows, which only raise it, dropped),
   and every echo pixel itself. Generous by design: a sliver of black inside it costs
   nothing, a cut-off finding would.

Numpy + OpenCV only: the runtime runs on carts without torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from usfm_edge.errors import InputError

Box = tuple[int, int, int, int]  # (x, y, w, h) in pixels of the full frame

_WORK_SIZE = 400          # long side (px) of the detection copy: ~2 ms at 1080p, edges within ~5 px
_MIN_AREA_FRAC = 0.01     # smaller components are chrome (icons, leftover text), not an image
_MIN_SIDE_PX = 16         # nor is anything narrower than this at full resolution
_BORDER_PX = 2            # ring of the detection copy that samples the background
_FLAT_BORDER = 0.15       # share of the border ring one colour must cover to be a background
_PARTNER_AREA = 0.3       # a second image (dual mode) is at least this fraction of the first
_PARTNER_OVERLAP = 0.5    # and shares this fraction of its rows (side by side) or columns (stacked)
_FLAT_SHARE = 0.5         # a component whose commonest level covers more than this is a panel
_SIDE_SAMPLES = 96        # rows sampled for the Theil-Sen fit of the sector's sides
_SECTOR_MARGIN_PX = 2     # the sector is grown by this (plus the erosion radius) at full resolution
# Luma weights are nearly symmetric in R and B, so BGR(A) captures work as well.
_TO_GRAY = {3: cv2.COLOR_RGB2GRAY, 4: cv2.COLOR_RGBA2GRAY}


@dataclass(frozen=True, eq=False)
class View:
    """Where the network looks in a captured frame: the crop ``box`` (x, y, w, h) and, inside
    it, the imaging ``sector`` ((h, w) bool; None: all of the box is image)."""

    box: Box
    sector: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.sector is not None and self.sector.shape != (self.box[3], self.box[2]):
            raise ValueError(f"sector {self.sector.shape} does not fit box {self.box}")

    @property
    def shape(self) -> tuple[int, int]:
        """(h, w) of the crop."""
        return self.box[3], self.box[2]

    def crop(self, image: np.ndarray) -> np.ndarray:
        x, y, w, h = self.box
        return image[y:y + h, x:x + w]

    def describe(self) -> dict[str, Any]:
        covered = 1.0 if self.sector is None else float(self.sector.mean())
        return {"box": list(self.box), "sector_fraction": round(covered, 4)}


def whole_frame(shape: tuple[int, ...]) -> Box:
    return 0, 0, int(shape[1]), int(shape[0])


def detect_scan_region(image: np.ndarray) -> Box | None:
    """The bounding box (x, y, w, h) of the B-mode image (fan or rectangle) in ``image``.

    ``image``: (H, W) gray or (H, W, C) colour with C in 1, 3, 4 (alpha ignored), uint8 or
    uint16. Text, rulers, gray bars and logos are excluded; two images side by side (dual
    mode) give one box around both. None when nothing image-like is found (a black frame).
    """
    view = detect_view(image, sector=False)
    return None if view is None else view.box


def detect_view(image: np.ndarray, *, sector: bool = True) -> View | None:
    """The B-mode image's box and (with ``sector``) its imaging sector; ``image`` as for
    ``detect_scan_region``. None when nothing image-like is found."""
    gray, small, factor = _detection_copy(image)  # (H, W) uint8, (h, w) float32, full px per small px
    background, tolerance = _background(small, gray, factor)
    mask = (small > background + tolerance).astype(np.uint8)
    # The erosion already removed thin chrome; the opening removes what survived as specks.
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3)))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count < 2:
        return None
    found = _image_box(small, labels, stats[1:], factor)
    if found is None:
        return None
    small_box, members = found
    grow = _erosion_size(factor) // 2
    box = _to_full(small_box, factor, grow, small.shape, gray.shape)
    if not sector:
        return View(box)
    x0, y0, x1, y1 = small_box
    echoes = np.isin(labels[y0:y1, x0:x1], members + 1)  # labels count the background as 0
    return View(box, _sector(echoes, small_box, box, factor, grow))


def sector_in(image: np.ndarray, box: Box) -> np.ndarray | None:
    """The imaging sector inside a given ``box`` (a manual ROI, a DICOM ultrasound region):
    detected in the crop, as an (h, w) bool mask of the box; None when the crop shows no
    image (then the whole box counts)."""
    x, y, w, h = box
    if min(w, h) < _MIN_SIDE_PX:
        return None
    inner = detect_view(image[y:y + h, x:x + w])
    if inner is None:
        return None
    sector = np.zeros((h, w), bool)
    ix, iy, iw, ih = inner.box
    sector[iy:iy + ih, ix:ix + iw] = True if inner.sector is None else inner.sector
    return sector


@dataclass
class RegionTracker:
    """Which region(s) of each frame to crop, stable over time.

    Precedence: ``roi`` (a manual override) > ``source_regions`` (what the file says) >
    detection. Detection runs on the first frame, every ``redetect_every`` frames and whenever
    the frame's shape changes; a re-detected box replaces the current one only if an edge moves
    by more than ``min_change`` of the frame's size on that axis, because every change resets
    the downstream temporal smoothing and a pixel of jitter must not.
    """

    roi: Box | None = None
    pick: int | str = 0               # which of several source regions: an index, or "all"
    redetect_every: int = 30          # frames; a depth change shows within a second at 30 fps
    min_change: float = 0.05          # fraction of the frame size (per axis)
    crop: bool = True                 # False: the whole frame is the region (crop rule "none")
    sector: bool = True               # find the imaging sector inside each region
    changes: int = 0                  # region changes after the first frame (reported in metrics)
    _regions: list[View] = field(default_factory=list, init=False, repr=False)
    _shape: tuple[int, int] | None = field(default=None, init=False, repr=False)
    _age: int = field(default=0, init=False, repr=False)  # frames since the last detection

    def __post_init__(self) -> None:
        if not (isinstance(self.pick, int) or self.pick == "all"):
            raise InputError(f"pick must be a region index (0, 1, ...) or 'all', not {self.pick!r}")
        if self.redetect_every < 1:
            raise InputError(f"redetect_every must be >= 1 frame, not {self.redetect_every}")
        if not (isinstance(self.min_change, (int, float)) and 0.0 <= self.min_change < 1.0):
            raise InputError(f"min_change is a fraction of the frame size in [0, 1), not {self.min_change}")
        if self.roi is not None and (self.roi[2] < _MIN_SIDE_PX or self.roi[3] < _MIN_SIDE_PX):
            raise InputError(f"roi {tuple(self.roi)} must be (x, y, w, h) with w and h >= {_MIN_SIDE_PX} px")

    def update(self, image: np.ndarray, source_regions: Sequence[Box] = ()) -> list[View]:
        """The region(s) to crop from this frame, each with its imaging sector; ``image`` as
        for ``detect_scan_region``, ``source_regions`` what the file says (e.g. DICOM
        ultrasound regions). Raises InputError when ``pick`` names a region the source does
        not have, or the ROI lies outside the frame."""
        shape = (int(image.shape[0]), int(image.shape[1]))
        if self.roi is not None or len(source_regions):
            given = [_clip(self.roi, shape, "roi")] if self.roi is not None else self._picked(source_regions, shape)
            self._age = self.redetect_every  # should the source stop giving regions, detect at once
            if shape == self._shape and given == [v.box for v in self._regions]:
                return list(self._regions)
            return self._settle([View(b, sector_in(image, b) if self.sector else None) for b in given], shape)
        if shape == self._shape and self._age < self.redetect_every:
            self._age += 1
            return list(self._regions)
        view = self.detect(image)
        self._age = 1
        if shape == self._shape and _edge_shift(self._regions[0].box, view.box, shape) <= self.min_change:
            return list(self._regions)
        return self._settle([view], shape)

    def detect(self, image: np.ndarray) -> View:
        """This frame's view by detection alone, with no history: what ``prepare.locate``
        gives every stage for a still."""
        whole = whole_frame(image.shape)
        if not self.crop:
            return View(whole, sector_in(image, whole) if self.sector else None)
        return detect_view(image, sector=self.sector) or View(whole)

    def _picked(self, regions: Sequence[Box], shape: tuple[int, int]) -> list[Box]:
        if self.pick == "all":
            return [_clip(r, shape, f"source region {i}") for i, r in enumerate(regions)]
        if not 0 <= self.pick < len(regions):
            raise InputError(
                f"pick={self.pick} but the source has {len(regions)} region(s) "
                f"(indices 0..{len(regions) - 1}); choose one of them or 'all'"
            )
        return [_clip(regions[self.pick], shape, f"source region {self.pick}")]

    def _settle(self, regions: list[View], shape: tuple[int, int]) -> list[View]:
        """Make ``regions`` current, counting a change unless this is the first frame."""
        if self._regions and [v.box for v in regions] != [v.box for v in self._regions]:
            self.changes += 1
        self._regions, self._shape = regions, shape
        return list(regions)


# --------------------------------------------------------------------------- detection steps


def _erosion_size(factor: int) -> int:
    """Odd kernel side wider than chrome strokes: 3 px, or 5 px on frames over 1200 px (1080p)."""
    return 5 if factor >= 4 else 3


def _detection_copy(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(full-resolution (H, W) uint8 luminance, its eroded and area-downscaled (h, w) float32
    copy, the integer downscale factor: full-resolution pixels per detection pixel)."""
    gray = _luminance(image)
    h, w = gray.shape
    factor = max(1, math.ceil(max(h, w) / _WORK_SIZE))
    size = _erosion_size(factor)
    # A cross, not a square: it removes strokes as thin but rounds the fan's corners less.
    eroded = cv2.erode(gray, cv2.getStructuringElement(cv2.MORPH_CROSS, (size, size)))
    small = cv2.resize(eroded, (w // factor, h // factor), interpolation=cv2.INTER_AREA)
    return gray, small.astype(np.float32), factor


def _luminance(image: np.ndarray) -> np.ndarray:
    """(H, W) uint8 brightness of a gray, RGB or RGBA frame. Converting first makes every
    later full-resolution step one channel (a third of the time at 1080p)."""
    if np.issubdtype(image.dtype, np.floating):  # unit-range float frames (decoders, tests)
        image = (np.clip(np.nan_to_num(image), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if image.dtype not in (np.uint8, np.uint16):
        raise InputError(f"expected a uint8, uint16 or [0, 1] float image, got {image.dtype}")
    if image.ndim == 3 and image.shape[2] in _TO_GRAY:
        image = cv2.cvtColor(np.ascontiguousarray(image), _TO_GRAY[image.shape[2]])
    elif image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    elif image.ndim != 2:
        raise InputError(f"expected an (H, W) gray or (H, W, 3) RGB image, got shape {image.shape}")
    if min(image.shape) < _MIN_SIDE_PX:
        raise InputError(f"image {image.shape} is too small to hold a scan region (>= {_MIN_SIDE_PX} px)")
    if image.dtype == np.uint16:
        # 10-16 bit captures: scale by the frame's own peak, so thresholds work in 8-bit units.
        peak = max(cv2.minMaxLoc(image)[1], 1.0)
        return cv2.convertScaleAbs(image, alpha=255.0 / peak)
    return np.ascontiguousarray(image)


def _background(small: np.ndarray, gray: np.ndarray, factor: int) -> tuple[float, float]:
    """(level, tolerance) in ``small``: the screen's background level and the margin above it
    that noise and eroded chrome stay under."""
    found = _flat_level(_ring(small, _BORDER_PX))
    if found is None:
        # The image reaches the border (a frame already cropped to it): no flat background to
        # find, so call the darkest percent background and keep the rest.
        return float(np.percentile(small, 1)), 0.5
    level, sigma = found
    full = _flat_level(_ring(gray, _BORDER_PX * factor))
    # Beside a thin bright stroke the erosion takes the minimum of fewer background samples
    # than in open background, which lifts eroded text on a noisy (analog) capture by about
    # 0.6 sigma of the full-resolution noise: 2 sigma of it covers that.
    return level, max(0.5, 4.0 * sigma, 2.0 * full[1] if full else 0.0)


def _ring(a: np.ndarray, width: int) -> np.ndarray:
    """The values of ``a``'s outer ``width`` rows and columns, flattened."""
    return np.concatenate([a[:width].ravel(), a[-width:].ravel(), a[:, :width].ravel(), a[:, -width:].ravel()])


def _flat_level(ring: np.ndarray) -> tuple[float, float] | None:
    """(level, noise sigma) of the darkest flat colour covering at least ``_FLAT_BORDER`` of
    ``ring``; None when there is none. The darkest, not the commonest: header and footer
    panels (lighter flat colours) can cover more of the border than the black around the image."""
    counts = np.bincount(np.clip(np.rint(ring), 0, 255).astype(np.int64), minlength=256)
    # Share within +-2 levels, so noise spreading a flat colour over a few levels still counts.
    share = np.convolve(counts, np.ones(5), mode="same") / ring.size
    flat = np.flatnonzero(share >= _FLAT_BORDER)
    if flat.size == 0:
        return None
    run_end = int(flat[0])
    while run_end + 1 < 256 and share[run_end + 1] >= _FLAT_BORDER:
        run_end += 1
    level = int(flat[0] + np.argmax(counts[flat[0]:run_end + 1]))
    # Noise from the dark side only (image pixels in the ring are brighter and would inflate
    # it), robustly (dark icons too): the median of a half-normal's magnitude is 0.674 sigma.
    below = level - ring[(ring <= level) & (ring >= level - 8)].astype(np.float32)
    return float(level), 1.4826 * float(np.median(below)) if below.size else 0.0


def _image_box(small: np.ndarray, labels: np.ndarray, stats: np.ndarray,
               factor: int) -> tuple[tuple[int, int, int, int], np.ndarray] | None:
    """((x0, y0, x1, y1) exclusive, in detection-copy pixels, of the image component(s); their
    indices into ``stats``)."""
    h, w = small.shape
    min_side = _MIN_SIDE_PX / factor
    ok = (stats[:, cv2.CC_STAT_AREA] >= _MIN_AREA_FRAC * h * w) \
        & (stats[:, cv2.CC_STAT_WIDTH] >= min_side) & (stats[:, cv2.CC_STAT_HEIGHT] >= min_side)
    candidates = np.flatnonzero(ok)
    if candidates.size == 0:
        return None
    first = int(candidates[np.argmax(stats[candidates, cv2.CC_STAT_AREA])])
    x, y, bw, bh, area = (int(v) for v in stats[first])
    x0, y0, x1, y1 = x, y, x + bw, y + bh
    members = [first]
    for i in candidates:
        if i == first or stats[i, cv2.CC_STAT_AREA] < _PARTNER_AREA * area:
            continue
        px, py, pw, ph, _ = (int(v) for v in stats[i])
        rows = min(y + bh, py + ph) - max(y, py)
        cols = min(x + bw, px + pw) - max(x, px)
        beside = rows >= _PARTNER_OVERLAP * min(bh, ph) or cols >= _PARTNER_OVERLAP * min(bw, pw)
        if beside and not _is_flat(small[labels == i + 1]):  # labels count the background as 0
            x0, y0, x1, y1 = min(x0, px), min(y0, py), max(x1, px + pw), max(y1, py + ph)
            members.append(int(i))
    return (x0, y0, x1, y1), np.array(members)


def _is_flat(values: np.ndarray) -> bool:
    """A panel or bar of one colour (with text on it), not speckle: one level dominates."""
    counts = np.bincount(np.rint(values).astype(np.int64), minlength=256)
    return bool(counts.max() > _FLAT_SHARE * values.size)


def _to_full(box: tuple[int, ...], factor: int, grow: int, small: tuple[int, ...], shape: tuple[int, ...]) -> Box:
    """Detection-copy box -> full-resolution (x, y, w, h), grown back by the erosion radius.
    A box touching the copy's far edge reaches the frame's: the downscale drops the last
    ``H mod factor`` rows and columns."""
    h, w = shape
    x0 = max(0, box[0] * factor - grow)
    y0 = max(0, box[1] * factor - grow)
    x1 = w if box[2] >= small[1] else min(w, box[2] * factor + grow)
    y1 = h if box[3] >= small[0] else min(h, box[3] * factor + grow)
    return x0, y0, x1 - x0, y1 - y0


def _sector(echoes: np.ndarray, small_box: tuple[int, ...], box: Box, factor: int, grow: int) -> np.ndarray:
    """(h, w) bool at full resolution inside ``box``: the imaging sector whose echo pixels
    ``echoes`` ((hs, ws) bool, detection copy, inside ``small_box``) shows (module docstring)."""
    hs, ws = echoes.shape
    rows = np.flatnonzero(echoes.sum(1) >= 2)
    if rows.size < 4:
        return np.ones((box[3], box[2]), bool)
    left = echoes[rows].argmax(1)
    right = ws - 1 - echoes[rows, ::-1].argmax(1)
    columns = np.flatnonzero(echoes.any(0))
    far = hs - 1 - echoes[::-1, columns].argmax(0)
    # Full-resolution pixel centres in detection-copy units, relative to small_box.
    x, y, w, h = box
    margin = (grow + _SECTOR_MARGIN_PX) / factor
    xs = (np.arange(x, x + w) + 0.5) / factor - 0.5 - small_box[0]
    ys = (np.arange(y, y + h) + 0.5) / factor - 0.5 - small_box[1]
    inside = (xs[None] >= _theil_sen(rows, left)(ys)[:, None] - margin) \
        & (xs[None] <= _theil_sen(rows, right)(ys)[:, None] + margin) \
        & (ys[:, None] <= _far_edge(columns, far)(xs)[None] + margin)
    # Every echo pixel is in, whatever the fit says.
    upscaled = cv2.resize(echoes.astype(np.uint8), (ws * factor, hs * factor), interpolation=cv2.INTER_NEAREST)
    ex, ey = small_box[0] * factor - x, small_box[1] * factor - y  # >= 0: the box was grown around it
    part = upscaled[:h - ey, :w - ex].astype(bool)
    inside[ey:ey + part.shape[0], ex:ex + part.shape[1]] |= part
    return inside


def _far_edge(t: np.ndarray, v: np.ndarray, rounds: int = 4):
    """The far edge v(t) (deepest echo per column): a quadratic, the arc of a curvilinear or
    phased probe or the line of a linear one. A shadow or dark tissue only ever moves the
    deepest echo up, never down, so the fit drops points above it and refits; the edge is
    never drawn above an echo that was seen (the max with the data)."""
    coef = np.polyfit(t, v, 2) if len(t) >= 3 else np.array([0.0, 0.0, float(v.max(initial=0))])
    for _ in range(rounds):
        residual = v - np.polyval(coef, t)
        keep = residual >= -max(1.0, 2.5 * 1.4826 * float(np.median(np.abs(residual))))
        if keep.sum() < 3 or keep.all():
            break
        coef = np.polyfit(t[keep], v[keep], 2)
    return lambda q: np.maximum(np.polyval(coef, q), np.interp(q, t, v))


def _theil_sen(t: np.ndarray, v: np.ndarray):
    """The robust line v(t): the median of pairwise slopes, the median intercept. Up to about
    29 % of the points may be anywhere (a lesion or shadow at the edge of the sector)."""
    pick = np.linspace(0, len(t) - 1, min(len(t), _SIDE_SAMPLES)).round().astype(int)
    t, v = t[pick].astype(np.float64), v[pick].astype(np.float64)
    i, j = np.triu_indices(len(t), k=1)
    dt = t[j] - t[i]
    slope = float(np.median((v[j] - v[i])[dt > 0] / dt[dt > 0])) if (dt > 0).any() else 0.0
    intercept = float(np.median(v - slope * t))
    return lambda q: intercept + slope * q


# --------------------------------------------------------------------------- tracker helpers


def _clip(box: Box, shape: tuple[int, int], what: str) -> Box:
    """``box`` clipped to an (H, W) frame; InputError when nothing of it is inside."""
    h, w = shape
    x, y, bw, bh = (int(v) for v in box)
    x0, y0, x1, y1 = max(0, x), max(0, y), min(w, x + bw), min(h, y + bh)
    if x1 - x0 < _MIN_SIDE_PX or y1 - y0 < _MIN_SIDE_PX:
        raise InputError(f"{what} {(x, y, bw, bh)} (x, y, w, h) leaves less than {_MIN_SIDE_PX}x{_MIN_SIDE_PX} px "
                         f"inside the {w}x{h} frame; give a region inside the frame")
    return x0, y0, x1 - x0, y1 - y0


def _edge_shift(old: Box, new: Box, shape: tuple[int, int]) -> float:
    """Largest move of any edge between two boxes, as a fraction of the frame on that axis."""
    h, w = shape
    (ax, ay, aw, ah), (bx, by, bw, bh) = old, new
    return max(abs(ax - bx) / w, abs(ax + aw - bx - bw) / w, abs(ay - by) / h, abs(ay + ah - by - bh) / h)
