"""The USFM encoder is the released architecture: names, shapes and numbers."""

from __future__ import annotations

import pytest
import torch

from usfm_edge.models import create_model
from usfm_edge.errors import InputError
from usfm_edge.models.checkpoint import adapt_input_conv, load_state_strict
from usfm_edge.contracts import GRAY_MEAN, GRAY_STD, IMAGENET_MEAN, IMAGENET_STD


@pytest.mark.shared_data
def test_state_dict_names_and_shapes_equal_the_official_release(official_keys):
    model = create_model("usfm_vit_b16")
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert ours == official_keys
    assert official_keys["rel_pos_bias.relative_position_bias_table"] == [732, 12]


def _timm_beit(size: int):
    from usfm_edge._compat.torchvision import import_timm

    import_timm()
    from timm.models.beit import Beit

    return Beit(
        img_size=size, patch_size=16, embed_dim=768, depth=12, num_heads=12, mlp_ratio=4.0, qkv_bias=True,
        use_abs_pos_emb=False, use_rel_pos_bias=False, use_shared_rel_pos_bias=True, init_values=0.1,
        global_pool="token", num_classes=0,
    ).eval()


@pytest.mark.parametrize("size", [224, 512])
def test_forward_features_matches_timm_beit(b16_state, size):
    ours = create_model("usfm_vit_b16", img_size=size).eval()
    load_state_strict(ours, b16_state, "b16_state")  # the 224 table, resized for 512
    reference = _timm_beit(size)
    # timm keeps the index as a non-persistent buffer: everything else must load 1:1.
    reference.load_state_dict(
        {k: v for k, v in ours.state_dict().items() if k != "rel_pos_bias.relative_position_index"}, strict=True
    )
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a, b = ours.forward_features(x), reference.forward_features(x)
    assert a.shape == (1, 1 + (size // 16) ** 2, 768)
    assert (a - b).abs().max().item() <= 1e-5


def test_explicit_attention_equals_fused(tiny_state):
    from tests.conftest import TINY

    fused = create_model("usfm_vit_t16", **TINY).eval()
    explicit = create_model("usfm_vit_t16", fused_attn=False, **TINY).eval()
    fused.load_state_dict(tiny_state)
    explicit.load_state_dict(tiny_state)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), explicit(x), atol=1e-5, rtol=1e-5)


def test_gray_patch_embedding_is_folded_exactly(tiny_state):
    """A 3-channel model fed a gray frame replicated == the folded 1-channel model on the frame."""
    from tests.conftest import TINY

    rgb = create_model("usfm_vit_t16", **TINY).eval()
    rgb.load_state_dict(tiny_state)
    gray = create_model("usfm_vit_t16", in_chans=1, **TINY).eval()
    report = load_state_strict(gray, tiny_state, "tiny")
    assert any("3 -> 1" in a for a in report.adapted)
    g = torch.rand(2, 1, 32, 32)
    x3 = (g.repeat(1, 3, 1, 1) - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    x1 = (g - GRAY_MEAN[0]) / GRAY_STD[0]
    with torch.no_grad():
        torch.testing.assert_close(rgb(x3), gray(x1), atol=1e-5, rtol=1e-4)


def test_adapt_input_conv_shapes():
    w, b = torch.randn(8, 3, 4, 4), torch.randn(8)
    w1, b1 = adapt_input_conv(w, b)
    assert w1.shape == (8, 1, 4, 4) and b1.shape == (8,)
    assert adapt_input_conv(w, None)[1] is None


@pytest.mark.parametrize("size", [(32, 32), (48, 32), (32, 64)])
def test_any_multiple_of_the_patch_size_works(size):
    model = create_model("usfm_vit_t16", img_size=size, depth=2).eval()
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        tokens = model.forward_features(x)
        taps = model.forward_taps(x)
    assert tokens.shape == (1, 1 + (size[0] // 16) * (size[1] // 16), 192)
    assert all(t.shape == (1, 192, size[0] // 16, size[1] // 16) for t in taps)


def test_wrong_input_size_says_what_to_do():
    model = create_model("usfm_vit_t16", img_size=32, depth=2)
    with pytest.raises(ValueError, match="img_size=\\(48, 48\\)"):
        model(torch.randn(1, 3, 48, 48))
    with pytest.raises(InputError, match="multiple of the patch size"):
        create_model("usfm_vit_t16", img_size=40)


def test_token_subset_sees_the_bias_of_its_positions(tiny_state):
    """MAE runs the encoder on kept tokens only; each keeps its own position's bias."""
    from tests.conftest import TINY

    model = create_model("usfm_vit_t16", **TINY).eval()
    model.load_state_dict(tiny_state)
    full = model.rel_pos_bias()
    keep = torch.tensor([2, 4])  # positions in [1, L]
    sub = model.rel_pos_bias(torch.cat([torch.zeros(1, dtype=torch.long), keep]))
    idx = torch.tensor([0, 2, 4])
    torch.testing.assert_close(sub, full[:, idx][:, :, idx])


def test_per_sample_token_subsets_equal_running_each_alone(tiny_state):
    from tests.conftest import TINY

    model = create_model("usfm_vit_t16", **TINY).eval()
    model.load_state_dict(tiny_state)
    tokens = model.embed(torch.randn(2, 3, 32, 32))  # (2, 4, D)
    keep = torch.tensor([[1, 3], [2, 4]])  # positions in [1, L]
    with torch.no_grad():
        both, _ = model.run_blocks(torch.stack([tokens[b, keep[b] - 1] for b in range(2)]), keep)
        for b in range(2):
            alone, _ = model.run_blocks(tokens[b:b + 1, keep[b] - 1], keep[b])
            torch.testing.assert_close(both[b:b + 1], alone, atol=1e-5, rtol=1e-5)
