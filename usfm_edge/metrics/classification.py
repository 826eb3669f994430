"""Classification metrics: accuracy, balanced accuracy, macro F1, AUC, confusion matrix."""

from __future__ import annotations

import numpy as np


def confusion_matrix(truth: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, K) counts; rows are the true class, columns the predicted one."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (truth, pred), 1)
    return matrix


def binary_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve as the Mann-Whitney statistic (ties count one half); NaN when
    one class is absent."""
    pos, neg = scores[positive], scores[~positive]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(len(order))
    values = np.concatenate([pos, neg])[order]
    # average ranks over ties
    unique, start, counts = np.unique(values, return_index=True, return_counts=True)
    average = start + (counts + 1) / 2.0
    ranks[order] = np.repeat(average, counts)
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def classification_metrics(truth: np.ndarray, probabilities: np.ndarray) -> dict:
    """``truth`` (N,) class indices, ``probabilities`` (N, K). AUC: binary for K = 2, else the
    macro mean of one-vs-rest AUCs over classes present."""
    truth = np.asarray(truth, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    k = probabilities.shape[1]
    pred = probabilities.argmax(axis=1)
    matrix = confusion_matrix(truth, pred, k)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    tp = np.diag(matrix).astype(np.float64)
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(k), where=(precision + recall) > 0)
    present = support > 0
    if k == 2:
        auc = binary_auc(probabilities[:, 1], truth == 1)
    else:
        aucs = [binary_auc(probabilities[:, c], truth == c) for c in range(k) if present[c]]
        auc = float(np.nanmean(aucs)) if aucs else float("nan")
    return {
        "accuracy": float(tp.sum() / max(len(truth), 1)),
        "balanced_accuracy": float(recall[present].mean()) if present.any() else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "auc": auc,
        "confusion_matrix": matrix.tolist(),
    }
