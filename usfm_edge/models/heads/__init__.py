"""Task heads. Each takes the encoder's feature maps (and the input image) and returns the
task output at input resolution: seg logits (B, K, H, W), class logits (B, K) or a restored
image (B, C, H, W)."""

from usfm_edge.models.heads import classification, enhancement, segmentation  # noqa: F401  (registers)
