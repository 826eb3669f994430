"""Pretraining objectives: a training-only wrapper (corruption + light decoder + loss) around
the encoder that gets deployed. Registered by name; ``--objective`` picks one.

Every objective takes a batch {"image": (B, C, H, W) in [0, 1], "mask": (B, gh, gw) bool} and
returns an ``Output`` with the loss, its parts for logging, and tensors for previews. Its
``forward`` is four named steps, as in MAE's reference code: ``corrupt`` (what the encoder may
see), ``encode``, ``decode`` (the light training-only head), ``loss``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from usfm_edge.models.vit import Block
from usfm_edge.train.pretrain.masking import RingSpec, add_noise, amplitude, band_stop, ring_stop_masks, upsample_mask

_OBJECTIVES: dict[str, Callable[..., nn.Module]] = {}


def register_objective(name: str):
    def decorator(cls):
        _OBJECTIVES[name] = cls
        cls.name = name
        return cls

    return decorator


def list_objectives() -> list[str]:
    return sorted(_OBJECTIVES)


def create_objective(name: str, encoder: nn.Module, *, mean, std, **kwargs) -> nn.Module:
    if name not in _OBJECTIVES:
        raise KeyError(f"unknown objective {name!r}; known: {list_objectives()}")
    return _OBJECTIVES[name](encoder, mean=mean, std=std, **kwargs)


@dataclass
class Output:
    loss: torch.Tensor
    parts: dict[str, float] = field(default_factory=dict)
    preview: dict[str, torch.Tensor] = field(default_factory=dict)  # (B, C, H, W) in [0, 1]


class _Normalizer(nn.Module):
    def __init__(self, mean, std) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, unit: torch.Tensor) -> torch.Tensor:
        return (unit - self.mean) / self.std

    def inverse(self, normalized: torch.Tensor) -> torch.Tensor:
        return normalized * self.std + self.mean


class PixelDecoder(nn.Module):
    """SimMIM's light decoder: 1x1 conv to p*p*C values per token, then PixelShuffle."""

    def __init__(self, dim: int, patch: int, channels: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(dim, patch * patch * channels, kernel_size=1)
        self.shuffle = nn.PixelShuffle(patch)

    def forward(self, tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        x = tokens[:, 1:].transpose(1, 2).reshape(tokens.shape[0], -1, *grid)  # (B, D, gh, gw), cls dropped
        return self.shuffle(self.proj(x))  # (B, C, H, W)


@register_objective("sfmim")
class SpatialFrequencyMIM(nn.Module):
    """USFM's spatial-frequency dual masked image modelling.

    The first half of each batch gets the spatial corruption (block mask, masked pixels set
    to the image mean, plus noise the model must remove), the second half the frequency
    corruption (random band-stop rings). Each image is encoded once, so a step costs what a
    SimMIM step costs plus the FFTs; the two halves share the encoder and the decoder.
    """

    def __init__(self, encoder: nn.Module, *, mean, std, speckle_sigma: float = 0.25, gaussian_sigma: float = 0.03,
                 visible_weight: float = 0.5, freq_weight: float = 1.0, freq_pixel_weight: float = 1.0,
                 spatial_fraction: float = 0.5, rings: dict | None = None) -> None:
        super().__init__()
        self.encoder, self.norm = encoder, _Normalizer(mean, std)
        self.decoder = PixelDecoder(encoder.embed_dim, encoder.patch_size, encoder.in_chans)
        self.speckle_sigma, self.gaussian_sigma = speckle_sigma, gaussian_sigma
        self.visible_weight, self.freq_weight, self.freq_pixel_weight = visible_weight, freq_weight, freq_pixel_weight
        self.spatial_fraction = spatial_fraction
        self.rings = RingSpec(**(rings or {}))

    def corrupt(self, image: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None = None):
        """Returns (corrupted unit images, spatial pixel mask (B,1,H,W), stopped bins (B,1,H,W)),
        the spatial half first."""
        b = image.shape[0]
        n_spatial = round(self.spatial_fraction * b) if b > 1 else 1
        size = image.shape[-2:]
        pixel_mask = upsample_mask(mask, size)
        pixel_mask[n_spatial:] = 0
        stop = ring_stop_masks(b, size, self.rings, generator, image.device)
        stop[:n_spatial] = 0
        spatial = add_noise(image[:n_spatial], self.speckle_sigma, self.gaussian_sigma, generator)
        fill = image[:n_spatial].mean(dim=(1, 2, 3), keepdim=True)  # "mean-padded" masked pixels
        spatial = torch.where(pixel_mask[:n_spatial] > 0, fill.expand_as(spatial), spatial)
        frequency = band_stop(image[n_spatial:], stop[n_spatial:])
        return torch.cat([spatial, frequency]), pixel_mask, stop

    def encode(self, corrupted: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) unit -> (B, 1 + L, D) tokens."""
        return self.encoder.forward_features(self.norm(corrupted))

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, 1 + L, D) -> (B, C, H, W) reconstruction, in normalized units."""
        return self.decoder(tokens, self.encoder.grid)

    def loss(self, image: torch.Tensor, recon: torch.Tensor, pixel_mask: torch.Tensor,
             stop: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Spatial rows: L1 on masked pixels plus ``visible_weight`` x L1 on the visible ones
        (noise recovery). Frequency rows: L1 of the log-amplitude on the stopped bins plus
        ``freq_pixel_weight`` x pixel L1."""
        target = self.norm(image)
        error = (recon - target).abs()  # (B, C, H, W)
        spatial_rows = pixel_mask.flatten(1).amax(1) > 0
        losses = {}
        if spatial_rows.any():
            m = pixel_mask[spatial_rows]
            masked = (error[spatial_rows] * m).sum() / (m.sum() * image.shape[1]).clamp(min=1)
            visible = (error[spatial_rows] * (1 - m)).sum() / ((1 - m).sum() * image.shape[1]).clamp(min=1)
            losses["spatial"] = masked + self.visible_weight * visible
        freq_rows = ~spatial_rows
        if freq_rows.any():
            s = stop[freq_rows]
            amp_error = (torch.log1p(amplitude(self.norm.inverse(recon[freq_rows])))
                         - torch.log1p(amplitude(image[freq_rows]))).abs()
            band = (amp_error * s).sum() / (s.sum() * image.shape[1]).clamp(min=1)
            losses["frequency"] = self.freq_weight * band + self.freq_pixel_weight * error[freq_rows].mean()
        return sum(losses.values()), losses

    def forward(self, batch: dict, generator: torch.Generator | None = None) -> Output:
        image = batch["image"]
        corrupted, pixel_mask, stop = self.corrupt(image, batch["mask"], generator)
        recon = self.decode(self.encode(corrupted))
        loss, parts = self.loss(image, recon, pixel_mask, stop)
        return Output(loss, {k: float(v.detach()) for k, v in parts.items()},
                      {"input": image, "corrupted": corrupted, "reconstruction": self.norm.inverse(recon).clamp(0, 1)})


def sincos_2d(grid: tuple[int, int], dim: int) -> torch.Tensor:
    """(gh*gw, dim) fixed 2-D sine-cosine position embedding (MAE's decoder)."""
    gh, gw = grid
    y, x = torch.meshgrid(torch.arange(gh, dtype=torch.float32), torch.arange(gw, dtype=torch.float32), indexing="ij")
    quarter = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float32) / quarter)
    parts = [torch.sin(y.flatten()[:, None] * omega), torch.cos(y.flatten()[:, None] * omega),
             torch.sin(x.flatten()[:, None] * omega), torch.cos(x.flatten()[:, None] * omega)]
    return torch.cat(parts, dim=1)


@register_objective("mae")
class MaskedAutoencoder(nn.Module):
    """USF-MAE: the encoder sees only the kept tokens (25 %); each keeps its position through
    the shared relative bias gathered for its own position (the USFM encoder has no absolute
    position embedding). A 512-d, 8-block decoder with fixed sine-cosine positions predicts
    the pixels of the masked patches; MSE, optionally against per-patch normalised pixels."""

    def __init__(self, encoder: nn.Module, *, mean, std, mask_ratio: float = 0.75, decoder_dim: int = 512,
                 decoder_depth: int = 8, decoder_heads: int = 16, norm_pix_loss: bool = True) -> None:
        super().__init__()
        self.encoder, self.norm = encoder, _Normalizer(mean, std)
        self.mask_ratio, self.norm_pix_loss = mask_ratio, norm_pix_loss
        p, c = encoder.patch_size, encoder.in_chans
        self.embed = nn.Linear(encoder.embed_dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.register_buffer("positions", sincos_2d(encoder.grid, decoder_dim)[None], persistent=False)
        self.blocks = nn.ModuleList(Block(decoder_dim, decoder_heads, 4.0, 1.0, 0.0, True) for _ in range(decoder_depth))
        self.head_norm = nn.LayerNorm(decoder_dim, eps=1e-6)
        self.pred = nn.Linear(decoder_dim, p * p * c)
        nn.init.normal_(self.mask_token, std=0.02)
        self._no_bias = torch.zeros(1, 1)

    def patchify(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, L, p*p*C)."""
        p = self.encoder.patch_size
        b, c, h, w = images.shape
        x = images.reshape(b, c, h // p, p, w // p, p)
        return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // p) * (w // p), p * p * c)

    def unpatchify(self, patches: torch.Tensor) -> torch.Tensor:
        p, c = self.encoder.patch_size, self.encoder.in_chans
        gh, gw = self.encoder.grid
        x = patches.reshape(-1, gh, gw, p, p, c).permute(0, 5, 1, 3, 2, 4)
        return x.reshape(-1, c, gh * p, gw * p)

    def corrupt(self, x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Random masking: (B, K) positions 0..L-1 of the kept tokens, sorted, and (B, L) with
        1 where a token is masked. The noise is drawn on the CPU generator (reproducible on
        any device)."""
        b, length = x.shape[0], self.encoder.grid[0] * self.encoder.grid[1]
        keep_n = max(1, round(length * (1 - self.mask_ratio)))
        noise = torch.rand(b, length, generator=generator, device="cpu").to(x.device)
        keep = noise.argsort(dim=1)[:, :keep_n].sort(dim=1).values
        masked = torch.ones(b, length, device=x.device)
        masked.scatter_(1, keep, 0.0)
        return keep, masked

    def encode(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) normalized, kept positions (B, K) -> (B, 1 + K, D): only the kept
        tokens go through the encoder, each with the relative bias of its own position."""
        tokens = self.encoder.embed(x)  # (B, L, D)
        visible = torch.gather(tokens, 1, keep[..., None].expand(-1, -1, tokens.shape[-1]))
        encoded, _ = self.encoder.run_blocks(visible, keep + 1)  # +1: cls is position 0
        return encoded

    def decode(self, encoded: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """(B, 1 + K, D) -> (B, L, p*p*C): mask tokens fill the gaps, fixed positions are added."""
        dec = self.embed(encoded[:, 1:])
        b, length = keep.shape[0], self.positions.shape[1]
        full = self.mask_token.expand(b, length, -1).clone()
        full.scatter_(1, keep[..., None].expand(-1, -1, dec.shape[-1]), dec)
        full = full + self.positions
        bias = self._no_bias.to(full)
        for block in self.blocks:
            full = block(full, bias)
        return self.pred(self.head_norm(full))

    def loss(self, x: torch.Tensor, pred: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        """MSE on the masked patches, against per-patch normalised pixels with ``norm_pix_loss``."""
        target = self.patchify(x)
        if self.norm_pix_loss:
            mu, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
            target = (target - mu) / (var + 1e-6) ** 0.5
        return (((pred - target) ** 2).mean(-1) * masked).sum() / masked.sum()

    def forward(self, batch: dict, generator: torch.Generator | None = None) -> Output:
        image = batch["image"]
        x = self.norm(image)
        keep, masked = self.corrupt(x, generator)
        pred = self.decode(self.encode(x, keep), keep)  # (B, L, p*p*C)
        loss = self.loss(x, pred, masked)
        patches = self.patchify(x)
        if self.norm_pix_loss:  # show the prediction in the image's own intensities
            pred = pred * (patches.var(-1, keepdim=True) + 1e-6) ** 0.5 + patches.mean(-1, keepdim=True)
        shown = torch.where(masked[..., None] > 0, pred, patches)
        corrupted = patches * (1 - masked[..., None])
        return Output(loss, {"mae": float(loss.detach())}, {
            "input": image, "corrupted": self.norm.inverse(self.unpatchify(corrupted)).clamp(0, 1),
            "reconstruction": self.norm.inverse(self.unpatchify(shown)).clamp(0, 1)})


@register_objective("feature")
class TeacherFeatureMIM(nn.Module):
    """URFM-style: regress a frozen teacher's patch features on masked tokens. The student
    sees the image with masked blocks set to the image mean; a linear layer maps its tokens to
    the teacher's width; teacher maps are resized to the student's patch grid and
    layer-normalised. Loss: 1 - cosine (default) or smooth-L1, on masked tokens only."""

    def __init__(self, encoder: nn.Module, *, mean, std, teacher: nn.Module, teacher_mean=None, teacher_std=None,
                 loss: str = "cosine") -> None:
        super().__init__()
        self.encoder, self.norm = encoder, _Normalizer(mean, std)
        self.teacher_norm = _Normalizer(teacher_mean or mean, teacher_std or std)
        self.teacher = teacher.eval().requires_grad_(False)
        self.loss_kind = loss
        with torch.no_grad():
            probe = torch.zeros(1, teacher_in_chans(teacher), *teacher_size(teacher, encoder))
            width = self._teacher_maps(probe).shape[1]
        self.project = nn.Linear(encoder.embed_dim, width)

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()  # frozen, whatever the wrapper's mode
        return self

    def _teacher_maps(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) normalized for the teacher -> (B, Dt, h, w)."""
        if hasattr(self.teacher, "grid"):  # a USFM-style ViT: tokens -> map
            tokens = self.teacher.forward_features(x)[:, 1:]
            return tokens.transpose(1, 2).reshape(x.shape[0], -1, *self.teacher.grid)
        return self.teacher.forward_taps(x)[-1]

    @torch.no_grad()
    def targets(self, image: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) unit -> (B, L, Dt): the teacher's layer-normalised features on the
        student's patch grid."""
        t_in = image if image.shape[1] == teacher_in_chans(self.teacher) else image.expand(-1, 3, -1, -1)
        t_in = F.interpolate(t_in, size=teacher_size(self.teacher, self.encoder), mode="bilinear", align_corners=False)
        teacher = self._teacher_maps(self.teacher_norm(t_in))
        teacher = F.interpolate(teacher, size=self.encoder.grid, mode="bilinear", align_corners=False)
        return F.layer_norm(teacher.flatten(2).transpose(1, 2), teacher.shape[1:2])

    def corrupt(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Masked blocks set to the image mean: (corrupted (B, C, H, W), pixel mask (B, 1, H, W))."""
        pixel_mask = upsample_mask(mask, image.shape[-2:])
        fill = image.mean(dim=(1, 2, 3), keepdim=True)
        return torch.where(pixel_mask > 0, fill.expand_as(image), image), pixel_mask

    def encode(self, corrupted: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) unit -> (B, L, D) patch tokens (cls dropped)."""
        return self.encoder.forward_features(self.norm(corrupted))[:, 1:]

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, L, D) -> (B, L, Dt): a linear map to the teacher's width."""
        return self.project(tokens)

    def loss(self, pred: torch.Tensor, teacher: torch.Tensor, pixel_mask: torch.Tensor) -> torch.Tensor:
        """1 - cosine (or smooth-L1) per token, on the masked tokens only."""
        token_mask = F.interpolate(pixel_mask, size=self.encoder.grid, mode="nearest").flatten(1)  # (B, L)
        if self.loss_kind == "cosine":
            per_token = 1 - F.cosine_similarity(pred, teacher, dim=-1)
        else:
            per_token = F.smooth_l1_loss(pred, teacher, reduction="none").mean(-1)
        return (per_token * token_mask).sum() / token_mask.sum().clamp(min=1)

    def forward(self, batch: dict, generator: torch.Generator | None = None) -> Output:
        image = batch["image"]
        corrupted, pixel_mask = self.corrupt(image, batch["mask"])
        loss = self.loss(self.decode(self.encode(corrupted)), self.targets(image), pixel_mask)
        return Output(loss, {"feature": float(loss.detach())}, {"input": image, "corrupted": corrupted})


def teacher_in_chans(teacher: nn.Module) -> int:
    return int(getattr(teacher, "in_chans", 3))


def teacher_size(teacher: nn.Module, encoder: nn.Module) -> tuple[int, int]:
    size = getattr(teacher, "img_size", None) or encoder.img_size
    return (size, size) if isinstance(size, int) else tuple(size)

