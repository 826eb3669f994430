"""Enhancement metrics.

With a clean target (the phantom): PSNR and SSIM. On real frames there is no clean image, so
the output is judged by itself in regions: speckle SNR (mean/std) and the equivalent number
of looks (ENL = SNR^2) in a homogeneous region, contrast-to-noise ratio between a region and
its background, and an edge-preservation index (how much of the input's edge structure
survives). PSNR against the degraded input would reward doing nothing, so it is never
computed.
"""

from __future__ import annotations

import cv2
import numpy as np


def psnr(output: np.ndarray, target: np.ndarray, data_range: float = 255.0) -> float:
    mse = float(np.mean((output.astype(np.float64) - target.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(data_range**2 / mse))


def ssim(output: np.ndarray, target: np.ndarray, data_range: float = 255.0) -> float:
    """Mean SSIM with an 11x11 Gaussian window (sigma 1.5), as Wang et al. 2004."""
    x, y = output.astype(np.float64), target.astype(np.float64)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def blur(a: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(a, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return float(s[5:-5, 5:-5].mean()) if min(s.shape) > 10 else float(s.mean())


def speckle_statistics(image: np.ndarray, region: np.ndarray) -> dict[str, float]:
    """Speckle SNR (mean/std) and ENL (SNR^2) inside a homogeneous ``region`` (bool mask)."""
    values = image[region.astype(bool)].astype(np.float64)
    std = values.std()
    snr = float(values.mean() / std) if std > 0 else float("inf")
    return {"snr": snr, "enl": snr**2}


def cnr(image: np.ndarray, region: np.ndarray, background: np.ndarray) -> float:
    """|mu_r - mu_b| / sqrt(sigma_r^2 + sigma_b^2)."""
    r = image[region.astype(bool)].astype(np.float64)
    b = image[background.astype(bool)].astype(np.float64)
    denom = np.sqrt(r.var() + b.var())
    return float(abs(r.mean() - b.mean()) / denom) if denom > 0 else float("inf")


def edge_preservation(output: np.ndarray, reference: np.ndarray) -> float:
    """Correlation of the Laplacians of output and reference (Sattar et al.'s edge
    preservation index): 1 when the reference's edges are all kept, 0 when none are."""
    lo = cv2.Laplacian(output.astype(np.float64), cv2.CV_64F)
    lr = cv2.Laplacian(reference.astype(np.float64), cv2.CV_64F)
    lo, lr = lo - lo.mean(), lr - lr.mean()
    denom = np.sqrt((lo**2).sum() * (lr**2).sum())
    return float((lo * lr).sum() / denom) if denom > 0 else 0.0


def enhancement_metrics(
    output: np.ndarray,
    *,
    target: np.ndarray | None = None,
    reference: np.ndarray | None = None,
    homogeneous: np.ndarray | None = None,
    region: np.ndarray | None = None,
    background: np.ndarray | None = None,
) -> dict[str, float]:
    """``target``: the clean image (phantom) for PSNR/SSIM/edge preservation; ``reference``:
    the input frame, for edge preservation on real data; the masks select regions for the
    no-reference statistics."""
    out: dict[str, float] = {}
    if target is not None:
        out["psnr"] = psnr(output, target)
        out["ssim"] = ssim(output, target)
        out["edge_preservation"] = edge_preservation(output, target)
    elif reference is not None:
        out["edge_preservation"] = edge_preservation(output, reference)
    if homogeneous is not None:
        stats = speckle_statistics(output, homogeneous)
        out["speckle_snr"], out["enl"] = stats["snr"], stats["enl"]
    if region is not None and background is not None:
        out["cnr"] = cnr(output, region, background)
    return out
