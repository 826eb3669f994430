"""The USFM encoder: a SimMIM/BEiT-style ViT with a shared relative position bias.

Parameter names and shapes are those of the released ``USFM_latest.pth`` encoder (checked
against ``shared/data/usfm_vit_b16_keys.json`` in the tests), and ``forward_features`` matches
timm's ``Beit`` numerically with the same weights. It is written here rather than wrapping
timm's ``Beit`` because (1) the release stores ``rel_pos_bias.relative_position_index`` as a
persistent buffer, which timm does not, (2) MAE-style pretraining runs the encoder on a subset
of tokens, which needs the bias gathered per kept token, and (3) the encoder then needs torch
alone, not timm and its torchvision import.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from usfm_edge.errors import InputError
from usfm_edge.models.pos_bias import RelativePositionBias


def _pair(v: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


class PatchEmbed(nn.Module):
    def __init__(self, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, C, H, W) -> (B, L, D)


class Attention(nn.Module):
    """Multi-head attention with q and v biases; the k bias is fixed at zero (BEiT)."""

    def __init__(self, dim: int, num_heads: int, *, fused: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.fused = fused
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        qkv_bias = torch.cat((self.q_bias, torch.zeros_like(self.v_bias), self.v_bias))
        qkv = F.linear(x, self.qkv.weight, qkv_bias)
        q, k, v = qkv.reshape(B, N, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)  # (B, h, N, d)
        # A 3-D (h, N, N) mask, not (1, h, N, N): with the 4-D one torch.export's SDPA
        # decomposition (torch 2.13) produces a strided result that the ONNX export cannot view.
        bias = bias.to(q.dtype)
        if self.fused:
            x = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        else:  # explicit form, for exporters and quantizers that do not know SDPA
            attn = (q * self.scale) @ k.transpose(-2, -1) + bias
            x = attn.softmax(dim=-1) @ v
        return self.proj(x.transpose(1, 2).reshape(B, N, C))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class DropPath(nn.Module):
    """Stochastic depth: drop a sample's whole residual branch during training."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


class Block(nn.Module):
    def __init__(
        self, dim: int, num_heads: int, mlp_ratio: float, init_values: float, drop_path: float, fused: bool
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, fused=fused)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.gamma_1 = nn.Parameter(torch.full((dim,), float(init_values)))
        self.gamma_2 = nn.Parameter(torch.full((dim,), float(init_values)))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.gamma_1 * self.attn(self.norm1(x), bias))
        return x + self.drop_path(self.gamma_2 * self.mlp(self.norm2(x)))


def _check_args(*, img: tuple[int, int], patch_size: int, in_chans: int, embed_dim: int, depth: int,
                num_heads: int, mlp_ratio: float, drop_path_rate: float) -> None:
    """Arguments that cannot build a ViT, refused with the one that is wrong (model args come
    from the command line and from config.json)."""
    counts = {"patch_size": patch_size, "in_chans": in_chans, "embed_dim": embed_dim, "depth": depth,
              "num_heads": num_heads}
    for name, value in counts.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InputError(f"model argument {name}={value!r}: must be an integer >= 1")
    if embed_dim % num_heads:
        raise InputError(f"model arguments embed_dim={embed_dim}, num_heads={num_heads}: embed_dim must be a "
                         "multiple of num_heads")
    if not (isinstance(mlp_ratio, (int, float)) and math.isfinite(mlp_ratio) and mlp_ratio > 0):
        raise InputError(f"model argument mlp_ratio={mlp_ratio!r}: must be a finite number > 0")
    if not (isinstance(drop_path_rate, (int, float)) and 0 <= drop_path_rate <= 1):
        raise InputError(f"model argument drop_path_rate={drop_path_rate!r}: must be in [0, 1]")
    if min(img) < patch_size or img[0] % patch_size or img[1] % patch_size:
        raise InputError(f"img_size {img} must be a positive multiple of the patch size {patch_size}")


class UsfmViT(nn.Module):
    """Encoder. ``forward_features``: (B, C, H, W) -> (B, 1 + L, D), cls first, final norm.

    ``img_size`` (int or (H, W)) fixes the patch grid the relative bias is built for; any size
    that is a multiple of ``patch_size`` works (weights for another grid are resized on load).
    """

    def __init__(
        self,
        *,
        img_size: int | tuple[int, int] = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        init_values: float = 0.1,
        drop_path_rate: float = 0.0,
        fused_attn: bool = True,
    ) -> None:
        super().__init__()
        h, w = _pair(img_size)
        _check_args(img=(h, w), patch_size=patch_size, in_chans=in_chans, embed_dim=embed_dim, depth=depth,
                    num_heads=num_heads, mlp_ratio=mlp_ratio, drop_path_rate=drop_path_rate)
        self.img_size, self.patch_size, self.in_chans = (h, w), patch_size, in_chans
        self.grid = (h // patch_size, w // patch_size)
        self.embed_dim = self.num_features = embed_dim
        self.depth = depth
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.rel_pos_bias = RelativePositionBias(self.grid, num_heads)
        rates = torch.linspace(0, drop_path_rate, depth).tolist()
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, init_values, rates[i], fused_attn) for i in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.taps = default_taps(depth)
        self._init_weights()

    # ---- pieces a head or a pretraining wrapper uses -------------------------------------
    @property
    def feature_channels(self) -> list[int]:
        return [self.embed_dim] * len(self.taps)

    @property
    def feature_reductions(self) -> list[int]:
        return [self.patch_size] * len(self.taps)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, L, D) patch tokens, no cls."""
        if x.shape[-2:] != self.img_size:
            raise ValueError(
                f"input is {tuple(x.shape[-2:])} but the encoder was built for {self.img_size}; "
                f"create it with img_size={tuple(x.shape[-2:])} (weights are resized on load)"
            )
        return self.patch_embed(x)

    def run_blocks(
        self, tokens: torch.Tensor, token_index: torch.Tensor | None = None, taps: tuple[int, ...] = ()
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Prepend cls, run every block. ``token_index`` ((N,) or per sample (B, N)) are the
        kept tokens' positions in [1, L]: MAE runs the encoder on a subset, and each kept token
        keeps its own position through the bias gathered for it (no position embedding).
        Returns the final-norm sequence (B, 1 + N, D) and the raw outputs of blocks ``taps``.
        """
        x = torch.cat((self.cls_token.expand(tokens.shape[0], -1, -1), tokens), dim=1)  # (B, 1+N, D)
        if token_index is not None:
            cls = token_index.new_zeros(token_index.shape[:-1] + (1,))
            token_index = torch.cat((cls, token_index), dim=-1)
        bias = self.rel_pos_bias(token_index)  # ([B,] heads, 1+N, 1+N), computed once for all blocks
        tapped = []
        for i, block in enumerate(self.blocks):
            x = block(x, bias)
            if i in taps:
                tapped.append(x)
        return self.norm(x), tapped

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, 1 + L, D) final-norm tokens, cls first."""
        return self.run_blocks(self.embed(x))[0]

    def forward_taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, C, H, W) -> block outputs at ``self.taps`` as maps (B, D, H/p, W/p)."""
        _, tapped = self.run_blocks(self.embed(x), taps=tuple(self.taps))
        gh, gw = self.grid
        return [t[:, 1:].transpose(1, 2).reshape(t.shape[0], -1, gh, gw) for t in tapped]  # drop cls

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)

    def no_weight_decay(self) -> set[str]:
        return {"cls_token", "rel_pos_bias.relative_position_bias_table"}

    def _init_weights(self) -> None:
        # BEiT's init: truncated normal 0.02, and each block's output projections scaled down
        # by depth so the residual stream starts small.
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        with torch.no_grad():
            for i, block in enumerate(self.blocks):
                block.attn.proj.weight.div_((2.0 * (i + 1)) ** 0.5)
                block.mlp.fc2.weight.div_((2.0 * (i + 1)) ** 0.5)


def default_taps(depth: int) -> list[int]:
    """Blocks whose outputs feed dense heads: BEiT's UPerNet choice (3, 5, 7, 11) at depth 12,
    else the ends of the four quarters."""
    if depth == 12:
        return [3, 5, 7, 11]
    if depth < 4:
        return list(range(depth))
    return sorted({round(depth * k / 4) - 1 for k in range(1, 5)})
