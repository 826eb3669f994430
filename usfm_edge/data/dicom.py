"""DICOM: single and multi-frame, gray / RGB / YBR / palette, frame times and the
Sequence of Ultrasound Regions (0018,6011).

The regions are what the scanner says about its own picture: where each image region sits
and its physical pixel size, so they give the true scan region (to crop to) and the mm scale
(for distances and HD95 in mm). A file can hold several side by side (dual mode).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from usfm_edge.errors import InputError

# PS3.3 C.8.5.5.1.2 Region Data Type, and units (PhysicalUnitsX/YDirection) in cm or s.
REGION_DATA_TYPES = {
    0: "none", 1: "tissue", 2: "color flow", 3: "pw doppler", 4: "cw doppler", 5: "doppler mean trace",
    6: "doppler mode trace", 7: "doppler max trace", 8: "volume trace", 10: "ecg trace", 11: "pulse trace",
    12: "phonocardiogram trace", 13: "gray bar", 14: "color bar", 15: "integrated backscatter",
}
_MM_PER_UNIT = {3: 10.0}  # 3 = cm; other units (s, Hz, ...) are not lengths
_PLUGIN_HINT = (
    "install a decoder for it: pip install pylibjpeg pylibjpeg-openjpeg pylibjpeg-rle (MIT), "
    "python-gdcm (BSD), or pylibjpeg-libjpeg (GPL-3.0) for JPEG-LS/lossless JPEG"
)


@dataclass(frozen=True)
class UltrasoundRegion:
    """One entry of the Sequence of Ultrasound Regions. Bounds are inclusive pixel indices."""

    x0: int
    y0: int
    x1: int
    y1: int
    data_type: int
    spatial_format: int
    spacing_mm: tuple[float, float] | None  # (row, column) mm per pixel, when the units are lengths

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(x, y, w, h) in pixels."""
        return self.x0, self.y0, self.x1 - self.x0 + 1, self.y1 - self.y0 + 1

    @property
    def kind(self) -> str:
        return REGION_DATA_TYPES.get(self.data_type, f"type {self.data_type}")

    @property
    def is_tissue(self) -> bool:
        """A 2-D B-mode image region (where a model looks)."""
        return self.data_type == 1 and self.spatial_format == 1


@dataclass
class DicomCine:
    """A DICOM file's frames and what the runtime and metrics need from its header."""

    path: Path
    frames: np.ndarray  # (N, H, W) gray or (N, H, W, 3) RGB; uint8 or uint16
    frame_times_ms: np.ndarray  # (N,) time of each frame from the first, in ms
    regions: list[UltrasoundRegion] = field(default_factory=list)
    photometric: str = ""
    transfer_syntax: str = ""

    @property
    def fps(self) -> float | None:
        if len(self.frame_times_ms) < 2:
            return None
        return 1000.0 / float(np.median(np.diff(self.frame_times_ms)))

    @property
    def tissue_regions(self) -> list[UltrasoundRegion]:
        return [r for r in self.regions if r.is_tissue]


def read_dicom(path: str | Path) -> DicomCine:
    """Read a DICOM file; raises ``InputError`` naming the file and the reason."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        ds = pydicom.dcmread(path)
    except (InvalidDicomError, OSError, EOFError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: not a readable DICOM file ({exc})") from exc
    if "PixelData" not in ds:
        raise InputError(f"{path}: has no pixel data (a structured report or a truncated file?)")
    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    syntax_name = getattr(syntax, "name", str(syntax))
    frames = _decode_frames(ds, path, syntax_name)
    return DicomCine(
        path=path,
        frames=frames,
        frame_times_ms=frame_times(ds, len(frames)),
        regions=ultrasound_regions(ds),
        photometric=str(ds.get("PhotometricInterpretation", "")),
        transfer_syntax=syntax_name,
    )


def _decode_frames(ds, path: Path, syntax_name: str) -> np.ndarray:
    from pydicom.pixels import apply_color_lut, convert_color_space

    try:
        pixels = ds.pixel_array
    except (NotImplementedError, RuntimeError, ImportError) as exc:
        raise InputError(f"{path}: cannot decode {syntax_name} pixel data ({exc}); {_PLUGIN_HINT}") from exc
    except (ValueError, AttributeError, EOFError) as exc:
        raise InputError(f"{path}: pixel data is corrupt or truncated ({exc})") from exc
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    if photometric == "PALETTE COLOR":
        pixels = _palette_to_rgb8(apply_color_lut(pixels, ds), ds)
    elif photometric in ("YBR_FULL", "YBR_FULL_422") and _still_ybr(ds):
        pixels = convert_color_space(pixels, photometric, "RGB")
    elif photometric == "MONOCHROME1":  # inverted gray
        pixels = pixels.max() - pixels if pixels.size else pixels
    color = pixels.shape[-1] == 3 and pixels.ndim == (4 if n_frames > 1 else 3)
    if n_frames == 1:
        pixels = pixels[None]
    if pixels.ndim != (4 if color else 3):
        raise InputError(f"{path}: unexpected pixel array shape {pixels.shape}")
    if pixels.dtype not in (np.uint8, np.uint16):
        pixels = _to_uint(pixels, int(ds.get("BitsStored", 16)))
    return np.ascontiguousarray(pixels)


def _palette_to_rgb8(rgb: np.ndarray, ds) -> np.ndarray:
    """Palette LUT entries are usually 16-bit; viewers show them as 8-bit colours."""
    descriptor = ds.get("RedPaletteColorLookupTableDescriptor")
    bits = int(descriptor[2]) if descriptor is not None else 8
    if bits > 8 or rgb.dtype == np.uint16 and rgb.max() > 255:
        return (rgb >> 8).astype(np.uint8)
    return rgb.astype(np.uint8)


def _still_ybr(ds) -> bool:
    """pydicom 3 converts YBR to RGB while decoding unless told not to; only convert if its
    output is still in YBR (older pydicom or uncompressed data read raw)."""
    import pydicom

    return int(pydicom.__version__.split(".")[0]) < 3


def _to_uint(pixels: np.ndarray, bits: int) -> np.ndarray:
    lo, hi = float(pixels.min()), float(pixels.max())
    scale = 65535.0 if bits > 8 else 255.0
    out = (pixels.astype(np.float64) - lo) / (hi - lo) * scale if hi > lo else np.zeros_like(pixels, float)
    return out.astype(np.uint16 if bits > 8 else np.uint8)


def frame_times(ds, n_frames: int) -> np.ndarray:
    """(N,) ms since the first frame, from FrameTimeVector, FrameTime, CineRate or
    RecommendedDisplayFrameRate, in that order; 0, 1, 2, ... x 33.3 ms (30 fps) if none."""
    vector = ds.get("FrameTimeVector")
    if vector is not None and len(vector) == n_frames:
        increments = np.asarray([float(v) for v in vector])
        increments[0] = 0.0  # the first entry is the time from the start, by convention 0
        return np.cumsum(increments)
    for key, to_ms in (("FrameTime", 1.0), ("CineRate", None), ("RecommendedDisplayFrameRate", None)):
        value = ds.get(key)
        if value not in (None, "") and float(value) > 0:
            step = float(value) if to_ms else 1000.0 / float(value)
            return np.arange(n_frames, dtype=np.float64) * step
    return np.arange(n_frames, dtype=np.float64) * (1000.0 / 30.0)


def ultrasound_regions(ds) -> list[UltrasoundRegion]:
    regions = []
    for item in ds.get("SequenceOfUltrasoundRegions", None) or []:
        units_x, units_y = item.get("PhysicalUnitsXDirection"), item.get("PhysicalUnitsYDirection")
        spacing = None
        if units_x in _MM_PER_UNIT and units_y in _MM_PER_UNIT:
            spacing = (
                abs(float(item.PhysicalDeltaY)) * _MM_PER_UNIT[units_y],
                abs(float(item.PhysicalDeltaX)) * _MM_PER_UNIT[units_x],
            )
        regions.append(UltrasoundRegion(
            x0=int(item.RegionLocationMinX0), y0=int(item.RegionLocationMinY0),
            x1=int(item.RegionLocationMaxX1), y1=int(item.RegionLocationMaxY1),
            data_type=int(item.get("RegionDataType", 0)), spatial_format=int(item.get("RegionSpatialFormat", 0)),
            spacing_mm=spacing,
        ))
    return regions


def is_dicom_file(path: str | Path) -> bool:
    """Part 10 files carry 'DICM' after a 128-byte preamble, whatever their name."""
    try:
        with open(path, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False
