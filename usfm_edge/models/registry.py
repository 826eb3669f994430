"""Registries for encoders and heads: register, don't branch.

``create_model("usfm_vit_b16", checkpoint=PATH, img_size=512, in_chans=1)`` builds any
registered encoder; a name of the form ``timm:NAME`` builds a timm backbone (CNN or hybrid
students). Heads register the same way and are built by ``create_head``.
"""

from __future__ import annotations

from collections.abc import Callable
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from torch import nn

from usfm_edge.errors import InputError, ModelNotFoundError

TIMM_PREFIX = "timm:"
_MODELS: dict[str, Callable[..., nn.Module]] = {}
_HEADS: dict[str, type[nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Decorator: register an encoder builder under its function name."""
    if fn.__name__ in _MODELS:
        raise ValueError(f"model {fn.__name__!r} is registered twice")
    _MODELS[fn.__name__] = fn
    return fn


def list_models(pattern: str = "*") -> list[str]:
    """Registered encoder names (timm backbones are not listed; use ``timm:NAME``)."""
    return sorted(name for name in _MODELS if fnmatch(name, pattern))


def is_model(name: str) -> bool:
    return name in _MODELS or name.startswith(TIMM_PREFIX)


def create_model(name: str, *, checkpoint: str | Path | None = None, **kwargs: Any) -> nn.Module:
    """Build the encoder ``name``; with ``checkpoint``, load weights strictly from it
    (safetensors, a flat state dict, or the SimMIM ``{"model": {"encoder.*": ...}}`` form)."""
    if not (name in _MODELS or name.startswith(TIMM_PREFIX)):
        raise ModelNotFoundError(
            f"unknown model {name!r}; known: {', '.join(list_models())}, or timm:<timm model name>"
        )
    try:
        if name.startswith(TIMM_PREFIX):
            from usfm_edge.models.timm_backbone import TimmBackbone

            model: nn.Module = TimmBackbone(name[len(TIMM_PREFIX):], **kwargs)
        else:
            model = _MODELS[name](**kwargs)
    except TypeError as exc:  # an argument the builder does not take
        raise InputError(f"model {name}: {exc}; check --model-args / model_args") from None
    if checkpoint is not None:
        from usfm_edge.models.checkpoint import load_encoder_checkpoint

        load_encoder_checkpoint(model, checkpoint)
    return model


def register_head(cls: type[nn.Module]) -> type[nn.Module]:
    """Class decorator: register a head under its ``name`` attribute."""
    name = getattr(cls, "name", None)
    if not name or name in _HEADS:
        raise ValueError(f"head {cls.__name__} needs a unique 'name' attribute")
    _HEADS[name] = cls
    return cls


def list_heads(task: str | None = None) -> list[str]:
    return sorted(n for n, c in _HEADS.items() if task is None or task in getattr(c, "tasks", ()))


def create_head(
    name: str, *, in_channels: list[int], reductions: list[int], num_outputs: int, **kwargs: Any
) -> nn.Module:
    """Build head ``name`` for an encoder with the given feature channels and reductions."""
    if name not in _HEADS:
        raise ModelNotFoundError(f"unknown head {name!r}; known: {', '.join(list_heads())}")
    return _HEADS[name](in_channels=in_channels, reductions=reductions, num_outputs=num_outputs, **kwargs)
