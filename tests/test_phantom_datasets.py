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


def test_bad_organ_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(cli, ["phantom", "--out", str(tmp_path), "--organ", "spleen"])
    assert result.exit_code == 2 and "spleen" in result.output
