"""The corruptions of masked image modelling.

Spatial (loader side, per image): SimMIM block masks on a grid of ``mask_patch`` pixels.
Frequency (device side, batched): band-stop rings of the centred 2-D spectrum. Noise (device
side): speckle-like multiplicative and additive Gaussian noise for noise addition-recovery.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


def block_mask(grid: tuple[int, int], ratio: float, rng: np.random.Generator) -> np.ndarray:
    """(gh, gw) bool, True = masked; exactly round(ratio * gh * gw) cells (SimMIM)."""
    cells = grid[0] * grid[1]
    chosen = rng.permutation(cells)[: round(ratio * cells)]
    mask = np.zeros(cells, dtype=bool)
    mask[chosen] = True
    return mask.reshape(grid)


def upsample_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, gh, gw) bool -> (B, 1, H, W) float, each cell repeated over its pixels."""
    gh, gw = mask.shape[-2:]
    return mask.float().repeat_interleave(size[0] // gh, 1).repeat_interleave(size[1] // gw, 2).unsqueeze(1)


@dataclass(frozen=True)
class RingSpec:
    """Concentric band-stop rings (radii in frequency bins from the centre of the shifted
    spectrum). Ring i starts at r_i (r_0 = ``center_protect``) and is
    ``base_bw + min(increase_factor * r_i, max_increase)`` wide; rings run out to the corner."""

    center_protect: float = 2.0
    base_bw: float = 2.0
    increase_factor: float = 0.1
    max_increase: float = 8.0
    ratio: float = 0.5

    def edges(self, size: tuple[int, int]) -> list[tuple[float, float]]:
        limit = float(np.hypot(size[0] / 2, size[1] / 2)) + 1
        edges, r = [], float(self.center_protect)
        while r < limit:
            width = self.base_bw + min(self.increase_factor * r, self.max_increase)
            edges.append((r, r + width))
            r += width
        return edges


def radius_map(size: tuple[int, int], device: torch.device | None = None) -> torch.Tensor:
    """(H, W) distance of each bin of the fftshift-ed spectrum from its centre (DC)."""
    h, w = size
    y = torch.arange(h, device=device, dtype=torch.float32) - h // 2
    x = torch.arange(w, device=device, dtype=torch.float32) - w // 2
    return torch.sqrt(y[:, None] ** 2 + x[None, :] ** 2)


def ring_stop_masks(batch: int, size: tuple[int, int], spec: RingSpec, generator: torch.Generator | None = None,
                    device: torch.device | None = None) -> torch.Tensor:
    """(B, 1, H, W) float, 1 where a bin is stopped: a random ``ratio`` of the rings per image.
    Bins inside ``center_protect`` (DC included) are never stopped."""
    edges = spec.edges(size)
    radius = radius_map(size, device)
    ring_of = torch.full(size, -1, dtype=torch.long, device=device)
    for i, (lo, hi) in enumerate(edges):
        ring_of[(radius >= lo) & (radius < hi)] = i
    n_stop = max(1, round(spec.ratio * len(edges)))
    scores = torch.rand(batch, len(edges), generator=generator, device="cpu").to(device)
    stopped = torch.zeros(batch, len(edges) + 1, device=device)  # the last column: protected bins
    stopped.scatter_(1, scores.argsort(dim=1)[:, :n_stop], 1.0)
    return stopped[:, ring_of].unsqueeze(1)  # ring_of == -1 reads the always-0 last column


def band_stop(images: torch.Tensor, stop: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) images in [0, 1] with the ``stop`` bins removed from their spectrum. The
    inverse transform is taken as a magnitude (it loses sign), which is why this runs before
    intensity normalisation."""
    if images.shape[0] == 0:  # a batch without a frequency half (MKL rejects empty FFTs)
        return images.clone()
    spectrum = torch.fft.fftshift(torch.fft.fft2(images.float()), dim=(-2, -1))
    kept = torch.fft.ifftshift(spectrum * (1 - stop), dim=(-2, -1))
    return torch.fft.ifft2(kept).abs().clamp(0, 1).to(images.dtype)


def amplitude(images: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> centred amplitude spectrum per pixel count (comparable across sizes)."""
    h, w = images.shape[-2:]
    return torch.fft.fftshift(torch.fft.fft2(images.float()), dim=(-2, -1)).abs() / (h * w) ** 0.5


def add_noise(images: torch.Tensor, speckle_sigma: float, gaussian_sigma: float,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """Multiplicative log-normal (speckle-like) and additive Gaussian noise, clipped to [0, 1]."""
    def randn() -> torch.Tensor:
        return torch.randn(images.shape, generator=generator, device="cpu").to(images.device)

    noisy = images * torch.exp(speckle_sigma * randn() - speckle_sigma**2 / 2) + gaussian_sigma * randn()
    return noisy.clamp(0, 1)
