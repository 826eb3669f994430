"""Match the phantom's speckle grain to real frames, for enhancement training.

Why this is how usfm-edge trains enhancement for real data: the target of ultrasound
enhancement is the tissue's echogenicity without speckle, and no real frame comes with it.
Noise2Noise needs two independent noisy views of one scene, but speckle is an interference
pattern fixed by tissue and probe: two frames of a still probe carry the same speckle, so they
are not independent. Blind-spot training needs noise independent from pixel to pixel, but
speckle is correlated over the point-spread function (a grain of several pixels), so a
one-pixel blind spot is predicted from its correlated neighbours and the speckle is kept.
The phantom has the exact target (its echogenicity map, log-compressed like the image); what
separates it from a given scanner is mostly the grain size and shape, which the PSF sets.
So we measure the grain on the user's real frames and render training pairs with that PSF.

The grain is measured as the half-maximum width of the autocovariance of the displayed
(log-compressed) image in homogeneous patches, axially and laterally, relative to the frame
size, and scaled to the size the phantom renders at: the network sees both at its input size.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from usfm_edge.data.phantom import PhantomConfig, autocorrelation_width, render

PATCH = 32
FWHM_PER_SIGMA = 2.355


def homogeneous_patches(image: np.ndarray, patch: int = PATCH) -> list[np.ndarray]:
    """Patches of tissue without edges: bright enough (not background or cyst) and with a
    flat local mean (no organ boundary inside)."""
    gray = image.astype(np.float64) if image.ndim == 2 else image.astype(np.float64).mean(-1)
    top = float(np.percentile(gray, 99)) or 1.0
    found = []
    for r in range(0, gray.shape[0] - patch + 1, patch):
        for c in range(0, gray.shape[1] - patch + 1, patch):
            p = gray[r:r + patch, c:c + patch]
            if p.mean() < 0.2 * top or (p == 0).mean() > 0.01:
                continue
            quarters = [p[:16, :16].mean(), p[:16, 16:].mean(), p[16:, :16].mean(), p[16:, 16:].mean()]
            if np.std(quarters) > 0.15 * p.mean():
                continue
            found.append(p)
    return found


def grain_size(frames: Sequence[np.ndarray]) -> tuple[float, float]:
    """Median (axial, lateral) speckle grain of the frames, as a fraction of their height and
    width."""
    axial, lateral = [], []
    for frame in frames:
        for p in homogeneous_patches(frame):
            axial.append(autocorrelation_width(p, axis=0) / frame.shape[0])
            lateral.append(autocorrelation_width(p, axis=1) / frame.shape[1])
    if not axial:
        raise ValueError("no homogeneous tissue patch found in the frames; give B-mode images of tissue")
    return float(np.median(axial)), float(np.median(lateral))


def match_psf(frames: Sequence[np.ndarray], config: PhantomConfig, *, iterations: int = 2,
              seed: int = 0) -> tuple[PhantomConfig, dict]:
    """``config`` with the PSF sigmas whose rendered grain, at ``config.size``, equals the
    real frames' grain. Log compression widens the grain a little, differently per setting,
    so the sigmas are corrected on rendered frames a couple of times."""
    target = grain_size(frames)
    h, w = config.size
    sigma = [target[0] * h / FWHM_PER_SIGMA, target[1] * w / FWHM_PER_SIGMA]
    for i in range(iterations):
        trial = dataclasses.replace(config, psf_axial_sigma_px=sigma[0], psf_lateral_sigma_px=sigma[1], n_lesions=(0, 0))
        rendered = grain_size([render(trial, seed + i).image for _ in range(2)])
        sigma = [s * t / r for s, t, r in zip(sigma, target, rendered)]
    matched = dataclasses.replace(config, psf_axial_sigma_px=float(sigma[0]), psf_lateral_sigma_px=float(sigma[1]))
    return matched, {"real_grain_fraction": list(target), "psf_sigma_px": [float(s) for s in sigma]}
