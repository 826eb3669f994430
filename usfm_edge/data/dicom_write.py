"""Write ultrasound cines as DICOM (US Multi-frame Image Storage), with frame times and a
Sequence of Ultrasound Regions, uncompressed or RLE Lossless, as gray, RGB, YBR_FULL or
palette colour: the encodings scanners write, so readers are tested on every one."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from usfm_edge.data.dicom import UltrasoundRegion

US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"
US_IMAGE = "1.2.840.10008.5.1.4.1.1.6.1"
PHOTOMETRICS = ("MONOCHROME2", "RGB", "YBR_FULL", "PALETTE COLOR")


def write_dicom(
    path: str | Path,
    frames: np.ndarray,
    *,
    fps: float = 30.0,
    photometric: str = "MONOCHROME2",
    rle: bool = False,
    regions: Sequence[UltrasoundRegion] = (),
    description: str = "usfm-edge phantom",
) -> Path:
    """``frames``: (N, H, W) uint8 gray, or (N, H, W, 3) uint8 RGB for RGB/YBR_FULL.
    PALETTE COLOR stores gray frames as indices into a gray-to-warm palette."""
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid

    if photometric not in PHOTOMETRICS:
        raise ValueError(f"photometric {photometric!r}; use one of {PHOTOMETRICS}")
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim not in (3, 4):
        raise ValueError(f"frames must be uint8 (N, H, W[, 3]); got {frames.dtype} {frames.shape}")
    color = photometric in ("RGB", "YBR_FULL")
    if color != (frames.ndim == 4):
        raise ValueError(f"{photometric} needs {'(N, H, W, 3)' if color else '(N, H, W)'} frames")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = US_MULTIFRAME if len(frames) > 1 else US_IMAGE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    now = dt.datetime.now()
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.SeriesDescription = "US", description
    ds.PatientName, ds.PatientID = "PHANTOM^SYNTHETIC", "PHANTOM"
    ds.StudyDate, ds.StudyTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds.Rows, ds.Columns = frames.shape[1], frames.shape[2]
    ds.NumberOfFrames = len(frames)
    ds.FrameTime = f"{1000.0 / fps:.3f}"
    ds.FrameIncrementPointer = pydicom.tag.Tag("FrameTime")
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.SamplesPerPixel = 3 if color else 1
    ds.PhotometricInterpretation = photometric
    if color:
        ds.PlanarConfiguration = 0
        data = frames if photometric == "RGB" else _rgb_to_ybr_full(frames)
    else:
        data = frames
    if photometric == "PALETTE COLOR":
        _add_palette(ds)
    ds.PixelData = np.ascontiguousarray(data).tobytes()
    if regions:
        ds.SequenceOfUltrasoundRegions = [_region_item(r) for r in regions]
    if rle:
        ds.compress(RLELossless, encoding_plugin="pydicom")
    ds.save_as(path, enforce_file_format=True)
    return Path(path)


def _rgb_to_ybr_full(rgb: np.ndarray) -> np.ndarray:
    from pydicom.pixels import convert_color_space

    return convert_color_space(rgb, "RGB", "YBR_FULL")


def _add_palette(ds) -> None:
    """A 256-entry 16-bit palette: gray for the low half, warming towards the top, as
    scanners colour-tint B-mode."""
    ramp = np.linspace(0, 65535, 256)
    red, green = ramp, ramp * np.where(np.arange(256) < 128, 1.0, 0.9)
    blue = ramp * np.where(np.arange(256) < 128, 1.0, 0.75)
    for name, lut in (("Red", red), ("Green", green), ("Blue", blue)):
        setattr(ds, f"{name}PaletteColorLookupTableDescriptor", [256, 0, 16])
        setattr(ds, f"{name}PaletteColorLookupTableData", lut.astype("<u2").tobytes())


def _region_item(region: UltrasoundRegion):
    from pydicom.dataset import Dataset

    item = Dataset()
    item.RegionSpatialFormat, item.RegionDataType, item.RegionFlags = region.spatial_format, region.data_type, 0
    item.RegionLocationMinX0, item.RegionLocationMinY0 = region.x0, region.y0
    item.RegionLocationMaxX1, item.RegionLocationMaxY1 = region.x1, region.y1
    if region.spacing_mm is not None:
        item.PhysicalUnitsXDirection = item.PhysicalUnitsYDirection = 3  # cm
        item.PhysicalDeltaY, item.PhysicalDeltaX = region.spacing_mm[0] / 10.0, region.spacing_mm[1] / 10.0
    else:
        item.PhysicalUnitsXDirection = item.PhysicalUnitsYDirection = 0
        item.PhysicalDeltaX = item.PhysicalDeltaY = 0.0
    return item
