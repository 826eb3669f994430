"""Reading foreign weights safely and loading them strictly.

Accepted files: ``.safetensors``; ``.pth``/``.pt``/``.bin`` read with
``torch.load(weights_only=True)`` (no pickled code runs). Accepted layouts: a flat state dict
(``USFM_latest.pth``), ``{"model": ...}`` / ``{"state_dict": ...}`` / ``{"module": ...}``
wrappers, SimMIM's ``encoder.``-prefixed keys (its ``decoder.*`` is dropped) and DDP's
``module.`` prefix.

Strict means: every weight of the model comes from the file, and every tensor of the file is
used, except the documented extras below. Two shape differences are adapted on purpose and
reported: the relative position bias table (resized for another input size) and the patch
embedding (3 -> 1 input channel, see ``adapt_input_conv``). Anything else is a
``CheckpointMismatchError`` listing the differences.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from usfm_edge.errors import CheckpointError, CheckpointMismatchError
from usfm_edge.models.pos_bias import relative_position_index, resize_bias_table
from usfm_edge.contracts import GRAY_MEAN, GRAY_STD, IMAGENET_MEAN, IMAGENET_STD

# Tensors a release may carry that the encoder does not use: SimMIM's mask token, and a
# classifier head or its norm from a fine-tuned checkpoint.
TOLERATED_EXTRAS = ("mask_token", "head.weight", "head.bias", "fc_norm.weight", "fc_norm.bias")
_WRAPPERS = ("model", "state_dict", "module", "encoder")
BIAS_TABLE = "rel_pos_bias.relative_position_bias_table"
BIAS_INDEX = "rel_pos_bias.relative_position_index"


@dataclass
class LoadReport:
    source: str
    loaded: int = 0
    ignored: list[str] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = f"{self.source}: {self.loaded} tensors loaded"
        if self.adapted:
            text += f"; adapted {', '.join(self.adapted)}"
        if self.ignored:
            text += f"; ignored extras {', '.join(self.ignored)}"
        return text


def read_checkpoint(path: str | Path, *, trust_pickle: bool = False) -> dict:
    """The raw object of a weights file. Pickled objects other than tensors are refused unless
    ``trust_pickle`` (only for files whose origin you trust: unpickling runs code)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file; give the path of a .pth or .safetensors file")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{path}: not a readable safetensors file ({exc}); re-download or re-export it") from exc
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: (?:GLOBAL )?([\w.]+)", str(exc))
        what = f" ({found.group(1)})" if found else ""
        raise CheckpointError(
            f"{path}: holds pickled Python objects besides tensors{what} (SimMIM-format files pickle their "
            "config), which safe loading refuses; if you trust its origin, convert it once with "
            f"'usfm-edge convert-checkpoint {path} --trust-pickle --out MODEL_DIR'"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({first}); the file may be truncated") \
            from None


def extract_state_dict(raw: object, source: str) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Unwrap the known layouts to a flat {name: tensor}; returns it and the dropped names."""
    obj = raw
    while isinstance(obj, dict) and not _is_state_dict(obj):
        key = next((k for k in _WRAPPERS if isinstance(obj.get(k), dict)), None)
        if key is None:
            raise CheckpointError(
                f"{source}: no state dict found (top-level keys: {sorted(map(str, obj))[:8]}); "
                "expected a flat state dict or one under 'model'/'state_dict'"
            )
        obj = obj[key]
    if not isinstance(obj, dict):
        raise CheckpointError(f"{source}: holds a {type(obj).__name__}, not a state dict")
    state = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    dropped: list[str] = []
    if any(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    if any(k.startswith("encoder.") for k in state):  # SimMIM: encoder.* + decoder.*
        dropped = sorted(k for k in state if not k.startswith("encoder."))
        state = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
    return state, dropped


def _is_state_dict(obj: dict) -> bool:
    return bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def adapt_input_conv(
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    *,
    src_norm: tuple[tuple[float, ...], tuple[float, ...]] = (IMAGENET_MEAN, IMAGENET_STD),
    dst_norm: tuple[tuple[float, ...], tuple[float, ...]] = (GRAY_MEAN, GRAY_STD),
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Fold a 3-channel input conv into a 1-channel one, exactly.

    A gray frame g fed as three normalized copies, x_c = (g - m_c) / s_c, and the same frame
    normalized once, y = (g - m) / s, give the same conv output when
    W' = s * sum_c W_c / s_c and b' = b + sum_c (m - m_c) / s_c * sum(W_c)
    (exact for unpadded convs such as the patch embedding).
    """
    (src_mean, src_std), ((dst_mean,), (dst_std,)) = src_norm, dst_norm
    s_c = torch.tensor(src_std, dtype=weight.dtype).view(1, -1, 1, 1)
    m_c = torch.tensor(src_mean, dtype=weight.dtype).view(1, -1, 1, 1)
    new_weight = dst_std * (weight / s_c).sum(dim=1, keepdim=True)
    if bias is None:
        return new_weight, None
    offset = ((dst_mean - m_c) / s_c * weight).sum(dim=(1, 2, 3))
    return new_weight, bias + offset


def _grid_for(index_shape: int, table_rows: int) -> tuple[int, int] | None:
    """Recover the (gh, gw) patch grid a bias table was made for."""
    n = index_shape - 1
    for gh in range(1, n + 1):
        if n % gh == 0 and (2 * gh - 1) * (2 * (n // gh) - 1) + 3 == table_rows:
            return gh, n // gh
    return None


def _adapt_relative_bias(model: nn.Module, state: dict, report: LoadReport) -> None:
    if BIAS_TABLE not in state or not hasattr(model, "grid"):
        return
    table = state[BIAS_TABLE]
    index = state.get(BIAS_INDEX)
    file_grid = _grid_for(index.shape[0], table.shape[0]) if index is not None else None
    if file_grid is None:
        raise CheckpointError(
            f"{report.source}: cannot tell the patch grid of {BIAS_TABLE} {tuple(table.shape)}; "
            f"the file needs its {BIAS_INDEX}"
        )
    if not torch.equal(index.long(), relative_position_index(file_grid)):
        raise CheckpointError(f"{report.source}: {BIAS_INDEX} does not follow the BEiT layout; not a USFM/BEiT encoder?")
    if file_grid != tuple(model.grid):
        state[BIAS_TABLE] = resize_bias_table(table, file_grid, tuple(model.grid))
        report.adapted.append(f"relative position bias {file_grid} -> {tuple(model.grid)} patches")
    state[BIAS_INDEX] = relative_position_index(tuple(model.grid))


def _adapt_input_channels(model_state: dict, state: dict, report: LoadReport) -> None:
    for name, target in model_state.items():
        source = state.get(name)
        if (
            source is None or source.ndim != 4 or target.ndim != 4
            or source.shape[1] != 3 or target.shape[1] != 1 or source.shape[0] != target.shape[0]
        ):
            continue
        bias_name = name.removesuffix("weight") + "bias"
        state[name], new_bias = adapt_input_conv(source, state.get(bias_name))
        if new_bias is not None:
            state[bias_name] = new_bias
        report.adapted.append(f"{name} 3 -> 1 input channel")


def first_blocks(model: nn.Module, state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """``state`` without the transformer blocks ``model`` does not have: a shallower student
    starts from a deeper encoder's first blocks (DistilBERT's initialisation). Returns the state
    and what was left out."""
    depth = len({key.split(".")[1] for key in model.state_dict() if key.startswith("blocks.")})
    if not depth:  # not a ViT: the strict load says what differs
        return dict(state), []
    kept, dropped = {}, set()
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "blocks" and parts[1].isdigit() and int(parts[1]) >= depth:
            dropped.add(int(parts[1]))
        else:
            kept[key] = value
    return kept, [f"blocks {min(dropped)}-{max(dropped)} (the model keeps the first {depth})"] if dropped else []


def load_state_strict(model: nn.Module, state: dict[str, torch.Tensor], source: str, *,
                      first_blocks_only: bool = False) -> LoadReport:
    """Load ``state`` into ``model`` with the strict rules of this module; ``first_blocks_only``:
    a shallower ViT takes the source's first blocks."""
    report = LoadReport(source=source)
    model_state = model.state_dict()
    state = dict(state)
    if first_blocks_only:
        state, left_out = first_blocks(model, state)
        report.ignored += left_out
    if hasattr(model, "remap_checkpoint"):  # wrappers whose names differ from their files'
        state, dropped = model.remap_checkpoint(state)
        report.ignored += dropped
    _adapt_relative_bias(model, state, report)
    _adapt_input_channels(model_state, state, report)
    extras = sorted(k for k in state if k not in model_state and k in TOLERATED_EXTRAS)
    unexpected = sorted(k for k in state if k not in model_state and k not in TOLERATED_EXTRAS)
    missing = sorted(k for k in model_state if k not in state)
    mismatched = [
        (k, tuple(state[k].shape), tuple(v.shape))
        for k, v in model_state.items() if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or mismatched:
        raise CheckpointMismatchError(source, missing=missing, unexpected=unexpected, mismatched=mismatched)
    model.load_state_dict({k: state[k] for k in model_state}, strict=True)
    report.loaded = len(model_state)
    report.ignored += extras
    return report


def load_encoder_checkpoint(model: nn.Module, path: str | Path, *, trust_pickle: bool = False,
                            first_blocks_only: bool = False) -> LoadReport:
    """Read ``path`` safely and load it strictly into ``model``."""
    raw = read_checkpoint(path, trust_pickle=trust_pickle)
    state, dropped = extract_state_dict(raw, str(path))
    report = load_state_strict(model, state, str(path), first_blocks_only=first_blocks_only)
    report.ignored = dropped + report.ignored
    return report
