"""The one prepare path: the imaging sector against the phantom's truth, the same view for a
still in every stage, and masks cropped with their images."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from usfm_edge.contracts import Crop, Preprocess
from usfm_edge.contracts.prepare import class_map, locate, paste, prepare, segment_frame
from usfm_edge.contracts.region import RegionTracker, View
from usfm_edge.data.phantom import Geometry, LesionKind, PhantomConfig, Posterior, add_ui_chrome, list_organs, render


def placed_truth(scan_mask: np.ndarray, box: tuple[int, ...], canvas: tuple[int, int]) -> np.ndarray:
    x, y, w, h = box
    truth = np.zeros(canvas, bool)
    truth[y:y + h, x:x + w] = cv2.resize(scan_mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
    return truth


@pytest.mark.parametrize("organ", list_organs())
@pytest.mark.parametrize("canvas", [(480, 640), (1080, 1920)])
def test_the_sector_is_the_phantoms_scan_area(organ, canvas):
    """Every fan or rectangle pixel is kept (recall 0.99) and little black is (IoU 0.93)."""
    spec = Preprocess()
    for seed in range(3):
        frame = render(PhantomConfig(size=(256, 256), organ=organ), rng=seed)
        screen, box = add_ui_chrome(frame.image, canvas_size=canvas, rng=seed, depth_cm=frame.depth_cm, scale=None)
        view = locate(screen, spec)
        found = paste(view.sector.astype(np.uint8), view, screen.shape) > 0
        truth = placed_truth(frame.scan_mask, box, canvas)
        recall = (found & truth).sum() / truth.sum()
        iou = (found & truth).sum() / (found | truth).sum()
        assert recall >= 0.99 and iou >= 0.93, (organ, seed, recall, iou)
        if frame.geometry is Geometry.CURVILINEAR:  # the fan's black corners are outside it
            assert view.sector.mean() < 0.85


def test_a_shadow_reaching_the_far_edge_does_not_cut_the_sector():
    """Posterior shadows behind anechoic lesions run to the bottom of the image: the deepest
    echo of those columns is far above the fan's edge, and the fit must not follow it."""
    spec = Preprocess()
    for seed in range(4):
        frame = render(PhantomConfig(size=(256, 256), organ="liver", n_lesions=(2, 2), lesion_kind=LesionKind.ANECHOIC,
                                     posterior=Posterior.SHADOW), rng=seed)
        screen, box = add_ui_chrome(frame.image, canvas_size=(480, 640), rng=seed, scale=None)
        view = locate(screen, spec)
        found = paste(view.sector.astype(np.uint8), view, screen.shape) > 0
        truth = placed_truth(frame.scan_mask, box, (480, 640))
        assert (found & truth).sum() / truth.sum() >= 0.995, seed


def test_a_still_gets_the_same_view_from_locate_and_from_the_runtime_tracker():
    frame = render(PhantomConfig(size=(192, 192), organ="liver"), rng=3)
    screen, _ = add_ui_chrome(frame.image, canvas_size=(360, 480), rng=3, scale=None)
    spec = Preprocess(input_size=(64, 64))
    view = locate(screen, spec)
    (tracked,) = RegionTracker(redetect_every=1, min_change=0.0, sector=spec.mask_sector).update(screen)
    assert tracked.box == view.box and np.array_equal(tracked.sector, view.sector)
    x, v = prepare(screen, spec)
    assert x.shape == (1, 1, 64, 64) and v.box == view.box


def test_crop_rule_none_keeps_the_whole_frame_and_still_finds_the_sector():
    frame = render(PhantomConfig(size=(128, 128), organ="liver"), rng=0)
    spec = Preprocess(input_size=(32, 32), crop=Crop.NONE)
    view = locate(frame.image, spec)
    assert view.box == (0, 0, 128, 128)
    assert view.sector[frame.scan_mask].mean() > 0.99 and view.sector.mean() < 0.9
    assert locate(frame.image, Preprocess(crop=Crop.NONE, mask_sector=False)).sector is None


def test_findings_outside_the_sector_are_cleared_and_pasted_onto_the_frame():
    sector = np.zeros((20, 30), bool)
    sector[5:15, 10:20] = True
    view = View((40, 50, 30, 20), sector)
    probs = np.zeros((2, 8, 8), np.float32)
    probs[1] = 1.0  # foreground everywhere
    classes = class_map(probs, view, Preprocess(input_size=(8, 8)))
    assert classes.shape == (20, 30) and classes[sector].all() and not classes[~sector].any()
    kept = class_map(probs, view, Preprocess(input_size=(8, 8), mask_sector=False))
    assert kept.all()
    logits = np.stack([np.zeros((8, 8)), np.full((8, 8), 9.0)]).astype(np.float32)
    on_frame = segment_frame(logits, view, Preprocess(input_size=(8, 8)), (100, 120))
    assert on_frame.shape == (100, 120) and on_frame.sum() == sector.sum()
    assert on_frame[55:65, 50:60].all()


def test_a_training_sample_is_the_crop_of_image_and_mask_alike(tmp_path):
    from usfm_edge.contracts.prepare import preprocess_frame, resize_label_map
    from usfm_edge.data.phantom_datasets import Screen, write_phantom_dataset
    from usfm_edge.train.datasets import SupervisedDataset, load_split

    root = write_phantom_dataset("seg", tmp_path / "d", n=4, config=PhantomConfig(size=(96, 96), organ="breast"),
                                 screen=Screen(ui=True, canvas=(200, 260)))
    split = load_split("seg", root, "train")
    spec = Preprocess(input_size=(96, 96))  # crops below 2x the input stay at full size
    item = SupervisedDataset("seg", split, spec)[0]
    image, mask = split.load(0)
    view = locate(image, spec)
    assert view.box[2] < image.shape[1] - 40  # the screen's chrome is cut away
    np.testing.assert_array_equal(item["image"].numpy(), preprocess_frame(view.crop(image), spec)[0])
    np.testing.assert_array_equal(item["target"].numpy(), resize_label_map(view.crop(mask), spec))
    assert mask[view.box[1]:view.box[1] + view.box[3], view.box[0]:view.box[0] + view.box[2]].sum() == mask.sum()
    # A crop over twice the input is brought to the working size first, image and mask alike.
    small = SupervisedDataset("seg", split, Preprocess(input_size=(32, 32)))
    work_image, work_mask = small.working(0)
    assert min(work_image.shape) == 64 and work_image.shape == work_mask.shape
    assert set(np.unique(work_mask)) <= set(np.unique(mask))
