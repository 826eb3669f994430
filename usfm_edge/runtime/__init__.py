"""Real-time pipeline: sources, scan-region crop, inference, overlay (``usfm-edge run``).

Must never import torch or training code: a cart runs it with the core install alone (a test
enforces this). ``runtime.app.build_pipeline`` assembles the stages from names.
"""

from usfm_edge.preprocess import preprocess_frame
from usfm_edge.spec import ModelConfig, Preprocess

__all__ = ["ModelConfig", "Preprocess", "preprocess_frame"]
