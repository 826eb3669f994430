"""Any timm backbone as an encoder (CNN or hybrid students, e.g. ``timm:resnet18``).

Weights are never downloaded: timm builds with ``pretrained=False``; bring weights as a file
(``create_model("timm:NAME", checkpoint=PATH)``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from usfm_edge._compat.torchvision import import_timm
from usfm_edge.errors import ModelNotFoundError


CLASSIFIER_NAMES = ("fc", "head", "classifier", "last_linear", "head.fc")


class TimmBackbone(nn.Module):
    """``forward_taps``: (B, C, H, W) -> the backbone's feature maps, strides growing."""

    def __init__(
        self,
        timm_name: str,
        *,
        img_size: int | tuple[int, int] = 224,
        in_chans: int = 3,
        out_indices: tuple[int, ...] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        timm = import_timm()
        if not timm.is_model(timm_name):
            raise ModelNotFoundError(f"timm has no model {timm_name!r}; see timm.list_models()")
        extra = {"out_indices": tuple(out_indices)} if out_indices is not None else {}
        self.body = timm.create_model(
            timm_name, pretrained=False, features_only=True, in_chans=in_chans, **extra, **kwargs
        )
        self.timm_name = timm_name
        self.img_size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        self.in_chans = in_chans
        self.feature_channels = list(self.body.feature_info.channels())
        self.feature_reductions = list(self.body.feature_info.reduction())

    def remap_checkpoint(self, state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
        """A plain timm state dict -> this module's names; its classifier is dropped."""
        own = set(self.state_dict())
        # features_only models drop the classifier from their cfg; these are timm's names for it.
        classifier = getattr(self.body, "pretrained_cfg", {}).get("classifier") or ()
        classifiers = CLASSIFIER_NAMES + ((classifier,) if isinstance(classifier, str) else tuple(classifier))
        out, dropped = {}, []
        for key, value in state.items():
            name = key if key.startswith("body.") else f"body.{key}"
            if name not in own and key.startswith(tuple(c + "." for c in classifiers)):
                dropped.append(key)
                continue
            out[name] = value
        return out, dropped

    def forward_taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(self.body(x))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The deepest map (B, C, h, w): CNNs have no token sequence."""
        return self.forward_taps(x)[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)
