"""`usfm-edge phantom` writes datasets that the readers load back."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from usfm_edge.cli import cli
from usfm_edge.data.layouts import load_classification, load_enhancement, load_segmentation, read_manifest
from usfm_edge.data.readers import read_frames


def _run(args):
    result = CliRunner().invoke(cli, ["phantom", *args])
    assert result.exit_code == 0, result.output
    return result


def test_seg_dataset_round_trips_with_spacing(tmp_path):
    _run(["--out", str(tmp_path), "--task", "seg", "--n", "10", "--size", "64", "--organ", "breast"])
    counts = {s: len(load_segmentation(tmp_path, s)) for s in ("train", "val", "test")}
    assert sum(counts.values()) == 10 and min(counts.values()) >= 1
    split = load_segmentation(tmp_path, "train")
    image, mask = split.load(0)
    assert image.shape == mask.shape == (64, 64) and set(np.unique(mask)) <= {0, 1} and mask.any()
    from usfm_edge.data.phantom import ORGANS

    assert split.samples[0].spacing_mm == pytest.approx(ORGANS["breast"].depth_cm * 10 / 64)  # linear probe


def test_cls_enhance_and_pretrain_round_trip(tmp_path):
    _run(["--out", str(tmp_path / "cls"), "--task", "cls", "--n", "8", "--size", "64"])
    train = load_classification(tmp_path / "cls", "train")
    assert train.classes == ["benign", "malignant"]
    _run(["--out", str(tmp_path / "enh"), "--task", "enhance", "--n", "6", "--size", "64"])
    image, target = load_enhancement(tmp_path / "enh", "train").load(0)
    assert image.shape == target.shape and not np.array_equal(image, target)
    _run(["--out", str(tmp_path / "pre"), "--task", "pretrain", "--n", "12", "--size", "48"])
    organs = {e.organ for e in read_manifest(tmp_path / "pre" / "manifest.csv")}
    assert len(organs) >= 2  # 'mixed' by default


def test_cine_as_video_and_dicom_with_its_region(tmp_path):
    _run(["--out", str(tmp_path), "--task", "cine", "--n", "6", "--size", "96", "--canvas", "240x320"])
    truth = json.loads((tmp_path / "truth.json").read_text())
    dicom = read_frames(tmp_path / "cine.dcm")
    assert dicom.frames.shape == (6, 240, 320) and dicom.fps == pytest.approx(20.0)
    (region,) = dicom.regions
    assert list(region.box) == truth["region_xywh"] and region.is_tissue
    assert region.spacing_mm[0] == pytest.approx(truth["spacing_mm"])
    video = read_frames(tmp_path / "cine.mp4")
    assert video.frames.shape[:3] == (6, 240, 320)
    x, y, w, h = truth["region_xywh"]
    outside = np.ones((240, 320), bool)
    outside[y:y + h, x:x + w] = False
    # the chrome has text and a ruler outside the image, and the image is inside the box
    assert dicom.frames[0][outside].max() > 0 and dicom.frames[0][y:y + h, x:x + w].mean() > 5
    assert len(list((tmp_path / "masks").glob("*.png"))) == 6


@pytest.mark.parametrize("photometric, rle", [("PALETTE COLOR", True), ("YBR_FULL", True), ("RGB", False)])
def test_cine_dicom_encodings_read_back(tmp_path, photometric, rle):
    args = ["--out", str(tmp_path), "--task", "cine", "--n", "3", "--size", "64", "--no-ui", "--photometric", photometric]
    _run(args + ([] if rle else ["--no-rle"]))
    cine = read_frames(tmp_path / "cine.dcm")
    video = read_frames(tmp_path / "cine.mp4").frames
    assert cine.frames.shape == (3, 64, 64, 3)
    if photometric != "PALETTE COLOR":  # palette tints the upper half of the gray range
        assert np.abs(cine.frames.astype(int)[..., 0] - video[..., 0].astype(int)).mean() < 6  # video is lossy


def test_bad_organ_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(cli, ["phantom", "--out", str(tmp_path), "--organ", "spleen"])
    assert result.exit_code == 2 and "spleen" in result.output


def test_speckle_grain_is_recovered_from_frames():
    import dataclasses

    from usfm_edge.data.phantom import PhantomConfig, render
    from usfm_edge.data.speckle_match import grain_size, match_psf

    truth = PhantomConfig(size=(192, 192), organ="breast", psf_axial_sigma_px=2.0, psf_lateral_sigma_px=3.5,
                          n_lesions=(0, 0))
    real = [render(truth, seed).image for seed in range(2)]
    same, _ = match_psf(real, PhantomConfig(size=(192, 192), organ="breast"))
    assert same.psf_axial_sigma_px == pytest.approx(2.0, rel=0.12)
    assert same.psf_lateral_sigma_px == pytest.approx(3.5, rel=0.12)
    half, info = match_psf(real, PhantomConfig(size=(96, 96), organ="breast"))
    rendered = grain_size([render(dataclasses.replace(half, n_lesions=(0, 0)), 7).image])
    np.testing.assert_allclose(rendered, info["real_grain_fraction"], rtol=0.2)


@pytest.mark.shared_data
def test_enhancement_pairs_matched_to_hc18(shared_data, tmp_path):
    result = _run(["--out", str(tmp_path), "--task", "enhance", "--n", "4", "--size", "96",
                   "--match-speckle", str(shared_data / "hc18_unlabeled")])
    assert "speckle matched to 20 frames" in result.output
    info = json.loads((tmp_path / "speckle_match.json").read_text())
    assert all(0 < s < 5 for s in info["psf_sigma_px"])
