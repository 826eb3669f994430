"""Readers on files the tests write (always available) and on ../shared/data (when present)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from usfm_edge.data.dicom import UltrasoundRegion, read_dicom
from usfm_edge.data.dicom_write import write_dicom
from usfm_edge.data.images import read_image
from usfm_edge.data.readers import read_frames
from usfm_edge.data.video import read_video, write_video
from usfm_edge.errors import InputError

RNG = np.random.default_rng(0)
GRAY = RNG.integers(0, 256, (4, 24, 32), dtype=np.uint8)
RGB = np.stack([GRAY, GRAY // 2, 255 - GRAY], axis=-1)
REGIONS = [UltrasoundRegion(1, 2, 15, 20, 1, 1, (0.25, 0.25)), UltrasoundRegion(16, 2, 31, 20, 1, 1, (0.25, 0.25))]


@pytest.mark.parametrize("photometric, frames", [
    ("MONOCHROME2", GRAY), ("RGB", RGB), ("YBR_FULL", RGB), ("PALETTE COLOR", GRAY),
])
@pytest.mark.parametrize("rle", [False, True])
def test_dicom_round_trip_every_encoding(tmp_path, photometric, frames, rle):
    path = write_dicom(tmp_path / "cine.dcm", frames, fps=25, photometric=photometric, rle=rle, regions=REGIONS)
    cine = read_dicom(path)
    assert cine.transfer_syntax == ("RLE Lossless" if rle else "Explicit VR Little Endian")
    assert cine.fps == pytest.approx(25.0)
    np.testing.assert_allclose(cine.frame_times_ms, np.arange(4) * 40.0)
    assert [r.box for r in cine.tissue_regions] == [(1, 2, 15, 19), (16, 2, 16, 19)]
    assert cine.regions[0].spacing_mm == pytest.approx((0.25, 0.25))
    if photometric == "PALETTE COLOR":
        assert cine.frames.shape == (*GRAY.shape, 3) and cine.frames.dtype == np.uint8
        gray_half = GRAY < 128  # the palette is gray below 128
        np.testing.assert_allclose(cine.frames[..., 0][gray_half], GRAY[gray_half], atol=1)
    else:
        assert cine.frames.shape == frames.shape
        np.testing.assert_allclose(cine.frames.astype(int), frames.astype(int), atol=1 if photometric == "YBR_FULL" else 0)


def test_image_files(tmp_path):
    Image.fromarray(GRAY[0]).save(tmp_path / "g.png")
    Image.fromarray(RGB[0]).save(tmp_path / "c.bmp")
    Image.fromarray(GRAY[0]).convert("P").save(tmp_path / "p.png")
    Image.fromarray((GRAY[0].astype(np.uint16) * 257)).save(tmp_path / "d.tif")
    Image.fromarray(RGB[0]).save(tmp_path / "j.jpg", quality=95)
    assert np.array_equal(read_image(tmp_path / "g.png"), GRAY[0])
    assert np.array_equal(read_image(tmp_path / "c.bmp"), RGB[0])
    assert read_image(tmp_path / "p.png").shape == (24, 32, 3)
    sixteen = read_image(tmp_path / "d.tif")
    assert sixteen.dtype == np.uint16 and int(sixteen.max()) == int(GRAY[0].max()) * 257
    assert read_image(tmp_path / "j.jpg").shape == (24, 32, 3)


def test_video_round_trip(tmp_path):
    smooth = np.repeat(np.linspace(0, 255, 32, dtype=np.uint8)[None, None], 24, axis=1).repeat(6, axis=0)
    path = write_video(tmp_path / "v.avi", smooth, fps=12, fourcc="MJPG")
    frames, info = read_video(path, gray=True)
    assert frames.shape == (6, 24, 32) and info.fps == pytest.approx(12)
    assert np.abs(frames.astype(int) - smooth).mean() < 4  # lossy codec, close to the source
    assert read_frames(path).frames.shape == (6, 24, 32, 3)


@pytest.mark.parametrize("name, content, reason", [
    ("broken.png", b"\x89PNG\r\n\x1a\n garbage", "not a readable image"),
    ("broken.dcm", b"\0" * 128 + b"DICM" + b"\x02\x00", "has no pixel data"),
    ("broken.mp4", b"\0\0\0\x18ftypmp42 nothing", "cannot open"),
    ("notes.txt", b"hello", "unknown file type"),
])
def test_corrupt_files_name_the_file(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError, match=reason) as info:
        read_frames(path)
    assert name in str(info.value)


def test_truncated_dicom_pixels(tmp_path):
    path = write_dicom(tmp_path / "cine.dcm", GRAY)
    path.write_bytes(path.read_bytes()[:-500])
    with pytest.raises(InputError, match="cine.dcm: (pixel data is corrupt|not a readable DICOM)"):
        read_dicom(path)


def test_dicom_without_suffix_is_recognised(tmp_path):
    write_dicom(tmp_path / "IM0001", GRAY)
    assert read_frames(tmp_path / "IM0001").frames.shape == GRAY.shape


def test_missing_file():
    with pytest.raises(InputError, match="no such file"):
        read_frames("/nonexistent/cine.dcm")


@pytest.mark.shared_data
def test_every_shared_dicom_reads_with_its_regions(shared_data):
    folder = shared_data / "dicom"
    expected = {
        "OBXXXX1A.dcm": ((1, 600, 800, 3), [(120, 60, 681, 459)]),
        "US-MONO2-8-8x-execho.dcm": ((8, 120, 128), []),
        "US-PAL-8-10x-echo.dcm": ((10, 430, 600, 3), []),
        "US1_UNCR.dcm": ((1, 480, 640, 3), []),
        "US1_J2KR.dcm": ((1, 480, 640, 3), []),
        "gdcm-US-ALOKA-16.dcm": ((1, 480, 640, 3), [(32, 24, 304, 392), (336, 24, 304, 392)]),
    }
    for name, (shape, tissue_boxes) in expected.items():
        cine = read_dicom(folder / name)
        assert cine.frames.shape == shape, name
        assert cine.frames.dtype == np.uint8, name
        assert [r.box for r in cine.tissue_regions] == tissue_boxes, name
    ob = read_dicom(folder / "OBXXXX1A.dcm")
    assert ob.tissue_regions[0].spacing_mm == pytest.approx((0.2623, 0.2623), rel=1e-3)
    assert read_dicom(folder / "US-MONO2-8-8x-execho.dcm").fps == pytest.approx(10.0)
    # JPEG 2000 decodes to exactly the uncompressed frame
    assert np.array_equal(read_dicom(folder / "US1_J2KR.dcm").frames, read_dicom(folder / "US1_UNCR.dcm").frames)


def test_data_package_imports_no_torch():
    code = "import usfm_edge.data.readers, usfm_edge.data.layouts, usfm_edge.data.dicom_write, sys; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "False"
