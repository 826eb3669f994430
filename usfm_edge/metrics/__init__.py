"""Task metrics in numpy + OpenCV only.

They run wherever a model's output has to be judged: fine-tuning, the export stage's accuracy
gate and the benchmarks, which run on a cart's core install without torch or scikit-learn.
That is why they are written here rather than taken from MONAI or torchmetrics (torch) or
scikit-learn (a 40 MB scipy stack on a cart); the tests check them against hand-computed
cases and, where installed, against scikit-learn.
"""

from usfm_edge.metrics.classification import classification_metrics
from usfm_edge.metrics.enhancement import enhancement_metrics, speckle_statistics
from usfm_edge.metrics.segmentation import dice, hd95, iou, segmentation_metrics

__all__ = [
    "classification_metrics", "dice", "enhancement_metrics", "hd95", "iou", "segmentation_metrics",
    "speckle_statistics",
]
