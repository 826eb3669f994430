"""Metrics against hand-computed cases (and scikit-learn where installed)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from usfm_edge.metrics import classification_metrics, dice, enhancement_metrics, hd95, iou, segmentation_metrics
from usfm_edge.metrics.enhancement import edge_preservation, psnr, speckle_statistics, ssim
from usfm_edge.metrics.segmentation import aggregate


def _square(shape, top, left, size):
    m = np.zeros(shape, np.uint8)
    m[top:top + size, left:left + size] = 1
    return m


def test_dice_and_iou_by_hand():
    a, b = _square((20, 20), 0, 0, 10), _square((20, 20), 0, 5, 10)  # overlap 10 x 5
    assert dice(a, b) == pytest.approx(2 * 50 / 200)
    assert iou(a, b) == pytest.approx(50 / 150)
    empty = np.zeros((20, 20))
    assert dice(empty, empty) == 1.0 and iou(empty, empty) == 1.0 and dice(a, empty) == 0.0


def test_hd95_of_a_shifted_square_is_the_shift():
    a, b = _square((64, 64), 10, 10, 30), _square((64, 64), 10, 14, 30)
    assert hd95(a, b)[0] == pytest.approx(4.0)
    # anisotropic pixels: 2 mm per column -> 8 mm
    assert hd95(a, b, spacing=(1.0, 2.0))[0] == pytest.approx(8.0)


def test_hd95_of_concentric_discs_is_the_radius_difference():
    a, b = np.zeros((128, 128), np.uint8), np.zeros((128, 128), np.uint8)
    cv2.circle(a, (64, 64), 20, 1, -1)
    cv2.circle(b, (64, 64), 30, 1, -1)
    assert hd95(a, b)[0] == pytest.approx(10.0, abs=1.0)


def test_hd95_empty_cases():
    full = _square((30, 40), 5, 5, 10)
    empty = np.zeros((30, 40))
    assert hd95(empty, empty) == (0.0, False)
    distance, flagged = hd95(full, empty, spacing=(0.5, 0.5))
    assert flagged and distance == pytest.approx(math.hypot(15, 20))


def test_segmentation_metrics_multiclass_and_mm():
    truth = np.zeros((40, 40), np.uint8)
    truth[5:15, 5:15], truth[20:30, 20:30] = 1, 2
    pred = truth.copy()
    pred[20:30, 22:32] = 2
    pred[20:30, 20:22] = 0
    m = segmentation_metrics(pred, truth, num_classes=3, spacing_mm=0.1)
    assert m["dice"] == pytest.approx((1.0 + 0.8) / 2)
    assert m["hd95"] == pytest.approx((0.0 + 2.0) / 2)
    assert m["hd95_mm"] == pytest.approx(m["hd95"] * 0.1)
    agg = aggregate([m, m])
    assert agg["dice_mean"] == pytest.approx(0.9) and agg["dice_std"] == 0.0
    with pytest.raises(ValueError, match="resize the prediction back"):
        segmentation_metrics(pred[:20], truth)


def test_classification_metrics_by_hand():
    truth = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.2, 0.8]])
    m = classification_metrics(truth, probs)
    assert m["accuracy"] == 0.75 and m["confusion_matrix"] == [[1, 1], [0, 2]]
    assert m["balanced_accuracy"] == pytest.approx((0.5 + 1.0) / 2)
    assert m["auc"] == pytest.approx(1.0)  # every positive scores above every negative


def test_classification_metrics_match_scikit_learn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    for k in (2, 4):
        truth = rng.integers(0, k, 200)
        logits = rng.normal(size=(200, k)) + np.eye(k)[truth] * 1.0
        probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        if k == 2:  # some ties (rounding keeps binary rows summing to 1)
            probs[:5, 1] = np.round(probs[:5, 1], 1)
            probs[:5, 0] = 1 - probs[:5, 1]
        ours = classification_metrics(truth, probs)
        pred = probs.argmax(1)
        assert ours["accuracy"] == pytest.approx(sk.accuracy_score(truth, pred))
        assert ours["balanced_accuracy"] == pytest.approx(sk.balanced_accuracy_score(truth, pred))
        assert ours["macro_f1"] == pytest.approx(sk.f1_score(truth, pred, average="macro"))
        expected_auc = (sk.roc_auc_score(truth, probs[:, 1]) if k == 2
                        else sk.roc_auc_score(truth, probs, multi_class="ovr", average="macro"))
        assert ours["auc"] == pytest.approx(expected_auc)
        assert ours["confusion_matrix"] == sk.confusion_matrix(truth, pred).tolist()


def test_enhancement_metrics():
    rng = np.random.default_rng(1)
    clean = cv2.GaussianBlur(rng.integers(0, 255, (64, 64)).astype(np.uint8), (9, 9), 3)
    assert psnr(clean, clean) == float("inf") and ssim(clean, clean) == pytest.approx(1.0)
    assert psnr(clean.astype(float) + 1, clean) == pytest.approx(10 * np.log10(255**2))
    noisy = np.clip(clean + rng.normal(0, 20, clean.shape), 0, 255)
    assert ssim(noisy, clean) < 0.9
    assert edge_preservation(clean, clean) == pytest.approx(1.0)
    assert edge_preservation(cv2.GaussianBlur(clean, (15, 15), 5), clean) < 0.9
    rayleigh = rng.rayleigh(1.0, (200, 200))
    stats = speckle_statistics(rayleigh, np.ones_like(rayleigh, bool))
    assert stats["snr"] == pytest.approx(1.913, abs=0.03) and stats["enl"] == pytest.approx(stats["snr"] ** 2)
    region = np.zeros((64, 64), bool)
    region[20:40, 20:40] = True
    m = enhancement_metrics(noisy, target=clean, homogeneous=region, region=region, background=~region)
    assert {"psnr", "ssim", "edge_preservation", "speckle_snr", "enl", "cnr"} <= set(m)
    assert "psnr" not in enhancement_metrics(noisy, reference=noisy)
