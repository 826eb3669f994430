"""The shared relative position bias of BEiT / USFM, and its resizing to other grids.

Table layout (as released): for a grid of Gh x Gw patches the table has
(2*Gh - 1) * (2*Gw - 1) + 3 rows and one column per head. Row
``(dy + Gh - 1) * (2*Gw - 1) + (dx + Gw - 1)`` holds the bias for a vertical offset dy and a
horizontal offset dx between two patches; the last three rows are cls->patch, patch->cls and
cls->cls. At 224 px with patch 16 that is 27 * 27 + 3 = 732 rows.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

NUM_CLS_ROWS = 3


def table_rows(grid: tuple[int, int]) -> int:
    return (2 * grid[0] - 1) * (2 * grid[1] - 1) + NUM_CLS_ROWS


def relative_position_index(grid: tuple[int, int]) -> torch.Tensor:
    """(1 + Gh*Gw, 1 + Gh*Gw) int64 row of the table for each (query, key) pair, cls first."""
    gh, gw = grid
    coords = torch.stack(torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")).flatten(1)  # (2, L)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)  # (L, L, 2): dy, dx
    rows = (rel[..., 0] + gh - 1) * (2 * gw - 1) + (rel[..., 1] + gw - 1)  # (L, L)
    n = table_rows(grid)
    index = torch.zeros((gh * gw + 1,) * 2, dtype=torch.long)
    index[1:, 1:] = rows
    index[0, 0:] = n - 3  # cls -> patch
    index[0:, 0] = n - 2  # patch -> cls
    index[0, 0] = n - 1  # cls -> cls
    return index


def _geometric_offsets(src_len: int, dst_len: int) -> np.ndarray:
    """Where the ``src_len`` source offsets sit on the destination offset axis.

    BEiT's rule (also USFM's): keep offset 0 and +-1 in place and stretch outwards along a
    geometric progression, so that near-neighbour biases, the ones that matter most, are kept
    while the far end reaches the new maximum offset.
    """
    half_src, half_dst = src_len // 2, dst_len // 2
    if half_src == 0:
        return np.zeros(1)
    if half_dst <= half_src:  # shrinking: plain linear spacing
        pos = np.linspace(0.0, half_dst, half_src + 1)[1:]
    else:
        lo, hi = 1.0 + 1e-9, 1.5
        while hi - lo > 1e-9:  # find the ratio whose progression ends at half_dst
            q = (lo + hi) / 2
            reach = (1 - q**half_src) / (1 - q)
            lo, hi = (lo, q) if reach > half_dst else (q, hi)
        if (1 - hi**half_src) / (1 - hi) < half_dst:  # a 1.5 ratio is not enough: grow linearly
            pos = np.linspace(1.0, half_dst, half_src)
        else:
            pos = np.cumsum([1.0] + [q ** (i + 1) for i in range(half_src - 1)])
    return np.concatenate([-pos[::-1], [0.0], pos])


def _interp_axis(values: np.ndarray, src_pos: np.ndarray, dst_len: int, axis: int) -> np.ndarray:
    dst_pos = np.arange(dst_len, dtype=np.float64) - dst_len // 2
    moved = np.moveaxis(values, axis, -1)
    flat = moved.reshape(-1, moved.shape[-1])
    out = np.stack([np.interp(dst_pos, src_pos, row) for row in flat])
    return np.moveaxis(out.reshape(*moved.shape[:-1], dst_len), -1, axis)


def resize_bias_table(
    table: torch.Tensor, old_grid: tuple[int, int], new_grid: tuple[int, int]
) -> torch.Tensor:
    """(rows(old_grid), heads) -> (rows(new_grid), heads).

    Vertical (dy) and horizontal (dx) offsets are interpolated separately, each on its own
    axis, so a grid that grows only in width changes only the horizontal profile. (The
    official USFM loader builds its interpolator on the transposed table and so swaps the two
    for anything but a symmetric table.) The three cls rows are kept as they are.
    """
    if tuple(old_grid) == tuple(new_grid):
        return table
    heads = table.shape[1]
    src_h, src_w = 2 * old_grid[0] - 1, 2 * old_grid[1] - 1
    dst_h, dst_w = 2 * new_grid[0] - 1, 2 * new_grid[1] - 1
    if table.shape[0] != src_h * src_w + NUM_CLS_ROWS:
        raise ValueError(f"bias table has {table.shape[0]} rows, expected {src_h * src_w + 3} for grid {old_grid}")
    grid = table[:-NUM_CLS_ROWS].detach().double().cpu().numpy().reshape(src_h, src_w, heads)  # (dy, dx, heads)
    grid = _interp_axis(grid, _geometric_offsets(src_h, dst_h), dst_h, axis=0)
    grid = _interp_axis(grid, _geometric_offsets(src_w, dst_w), dst_w, axis=1)
    resized = torch.from_numpy(grid.reshape(dst_h * dst_w, heads)).to(table.dtype)
    return torch.cat([resized.to(table.device), table[-NUM_CLS_ROWS:]], dim=0)


class RelativePositionBias(nn.Module):
    """One bias table shared by every block (``rel_pos_bias.*`` in the released weights)."""

    def __init__(self, grid: tuple[int, int], num_heads: int) -> None:
        super().__init__()
        self.grid = tuple(grid)
        self.relative_position_bias_table = nn.Parameter(torch.zeros(table_rows(self.grid), num_heads))
        # Persistent, as in the release: its presence in a file tells which grid the table is for.
        self.register_buffer("relative_position_index", relative_position_index(self.grid))

    def forward(self, token_index: torch.Tensor | None = None) -> torch.Tensor:
        """(heads, N, N) bias. ``token_index`` picks tokens by position (cls is 0): (N,) for
        one subset shared by the batch, or (B, N) per sample, giving (B, heads, N, N)."""
        index = self.relative_position_index
        if token_index is not None:
            if token_index.ndim == 1:
                index = index[token_index][:, token_index]
            else:
                index = index[token_index[:, :, None], token_index[:, None, :]]  # (B, N, N)
        bias = self.relative_position_bias_table[index]  # (..., N, N, heads)
        return bias.movedim(-1, -3).contiguous()
