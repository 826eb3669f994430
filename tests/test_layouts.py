"""Dataset layouts: the USFM segmentation layout, classification folders, manifests."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from usfm_edge.data.layouts import (
    ManifestEntry, load_classification, load_segmentation, read_manifest, write_manifest,
)
from usfm_edge.errors import InputError


def _seg_root(tmp_path, mask_values=(0, 255), labels=None):
    for split in ("training_set", "val_set"):
        for kind in ("image", "mask"):
            (tmp_path / split / kind).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.full((8, 10), 100, np.uint8)).save(tmp_path / split / "image" / f"{i:03d}.png")
            mask = np.zeros((8, 10), np.uint8)
            mask[2:5, 3:6] = mask_values[-1]
            mask[6:, :2] = mask_values[1] if len(mask_values) > 2 else mask_values[-1]
            Image.fromarray(mask).save(tmp_path / split / "mask" / f"{i:03d}.png")
    if labels:
        (tmp_path / "labels.json").write_text(json.dumps(labels))
    return tmp_path


def test_binary_masks_become_0_1(tmp_path):
    split = load_segmentation(_seg_root(tmp_path), "train")
    image, mask = split.load(0)
    assert split.labels == ["background", "foreground"] and len(split) == 2
    assert image.shape == mask.shape and set(np.unique(mask)) == {0, 1}


def test_multiclass_masks_with_labels_json(tmp_path):
    split = load_segmentation(_seg_root(tmp_path, (0, 1, 2), ["background", "a", "b"]), "val")
    assert set(np.unique(split.load(1)[1])) == {0, 1, 2}


def test_multiclass_without_labels_json_is_an_error_naming_the_file(tmp_path):
    split = load_segmentation(_seg_root(tmp_path, (0, 1, 2)), "train")
    with pytest.raises(InputError, match="000.png: mask values \\[0, 1, 2\\]"):
        split.load(0)


def test_missing_mask_and_missing_split(tmp_path):
    root = _seg_root(tmp_path)
    (root / "training_set" / "mask" / "001.png").unlink()
    with pytest.raises(InputError, match="001.png: has no mask"):
        load_segmentation(root, "train")
    with pytest.raises(InputError, match="test_set/image: missing"):
        load_segmentation(root, "test")


def test_classification_layout(tmp_path):
    for cls in ("benign", "malignant"):
        (tmp_path / "train" / cls).mkdir(parents=True)
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "train" / cls / "x.png")
    split = load_classification(tmp_path, "train")
    assert split.classes == ["benign", "malignant"] and [label for _, label in split.samples] == [0, 1]
    with pytest.raises(InputError, match="val: missing"):
        load_classification(tmp_path, "val")


def test_manifest_round_trip_and_errors(tmp_path):
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "a.png")
    path = write_manifest(tmp_path / "m.csv", [ManifestEntry(tmp_path / "a.png", "liver", None),
                                               ManifestEntry(tmp_path / "a.png", "thyroid", 3)])
    entries = read_manifest(path)
    assert [(e.organ, e.frame) for e in entries] == [("liver", None), ("thyroid", 3)]
    (tmp_path / "bad.csv").write_text("file,organ\na.png,liver\n")
    with pytest.raises(InputError, match="path,organ"):
        read_manifest(tmp_path / "bad.csv")
    (tmp_path / "gone.csv").write_text("path,organ\nmissing.png,liver\n")
    with pytest.raises(InputError, match="gone.csv:2: missing.png does not exist"):
        read_manifest(tmp_path / "gone.csv")


@pytest.mark.shared_data
def test_hc18_loads_with_spacing(shared_data):
    split = load_segmentation(shared_data / "hc18", "train")
    assert len(split) == 160 and all(s.spacing_mm for s in split.samples)
    image, mask = split.load(0)
    assert image.ndim == 2 and mask.shape == image.shape and set(np.unique(mask)) == {0, 1}
