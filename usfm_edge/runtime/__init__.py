"""Real-time pipeline: sources, scan-region crop, inference, overlay. Issue #8 builds it.

Must never import torch or training code: a cart runs it with the core install alone (a test
enforces this).
"""

from usfm_edge.preprocess import preprocess_frame
from usfm_edge.spec import ModelConfig, Preprocess

__all__ = ["ModelConfig", "Preprocess", "preprocess_frame"]
