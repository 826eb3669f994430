"""Relative position bias: the index layout and resizing that keeps the axes apart."""

from __future__ import annotations

import pytest
import torch

from usfm_edge.models.pos_bias import relative_position_index, resize_bias_table, table_rows


def test_index_equals_timm_beit_layout():
    from usfm_edge._compat.torchvision import import_timm

    import_timm()
    from timm.models.beit import gen_relative_position_index

    for grid in [(14, 14), (3, 5)]:
        assert torch.equal(relative_position_index(grid), gen_relative_position_index(grid))
    assert table_rows((14, 14)) == 732


def _table(grid, fn, heads=2):
    """A table whose value for offset (dy, dx) is fn(dy, dx) (+ head number)."""
    gh, gw = grid
    dy = torch.arange(-(gh - 1), gh).view(-1, 1).expand(2 * gh - 1, 2 * gw - 1)
    dx = torch.arange(-(gw - 1), gw).view(1, -1).expand(2 * gh - 1, 2 * gw - 1)
    body = torch.stack([fn(dy.double(), dx.double()) + h for h in range(heads)], dim=-1).reshape(-1, heads)
    return torch.cat([body, torch.full((3, heads), 7.0, dtype=body.dtype)]).float()


def _as_grid(table, grid):
    gh, gw = grid
    return table[:-3].reshape(2 * gh - 1, 2 * gw - 1, -1)


@pytest.mark.parametrize("new_grid", [(14, 32), (32, 14), (32, 32), (16, 20)])
def test_resize_keeps_vertical_and_horizontal_apart(new_grid):
    old = (14, 14)
    vertical = _table(old, lambda dy, dx: dy.abs() * 0.3)  # depends on the vertical offset only
    out = _as_grid(resize_bias_table(vertical, old, new_grid), new_grid)
    # still constant along dx for every dy...
    assert torch.allclose(out, out[:, :1].expand_as(out), atol=1e-5)
    # ...and it does vary along dy: the profile was not moved onto the other axis
    assert out[:, 0, 0].std() > 0.5
    horizontal = _table(old, lambda dy, dx: dx.abs() * 0.3)
    out = _as_grid(resize_bias_table(horizontal, old, new_grid), new_grid)
    assert torch.allclose(out, out[:1].expand_as(out), atol=1e-5)
    assert out[0, :, 0].std() > 0.5


def test_resize_keeps_near_offsets_and_cls_rows():
    old, new = (14, 14), (32, 32)
    table = _table(old, lambda dy, dx: torch.sin(dy) + torch.cos(dx))
    out = resize_bias_table(table, old, new)
    assert out.shape == (table_rows(new), 2)
    src, dst = _as_grid(table, old), _as_grid(out, new)
    for dy in (-1, 0, 1):  # offsets 0 and +-1 stay where they were (BEiT's geometric rule)
        for dx in (-1, 0, 1):
            torch.testing.assert_close(dst[31 + dy, 31 + dx], src[13 + dy, 13 + dx], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[-3:], table[-3:])


def test_resize_to_the_same_grid_is_the_identity():
    table = _table((5, 7), lambda dy, dx: dy * dx)
    assert resize_bias_table(table, (5, 7), (5, 7)) is table


def test_resize_round_trip_to_a_smaller_grid():
    table = _table((14, 14), lambda dy, dx: dy.abs() + dx.abs())
    out = resize_bias_table(table, (14, 14), (8, 8))
    assert out.shape == (table_rows((8, 8)), 2)
    assert torch.isfinite(out).all()
