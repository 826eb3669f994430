"""The B-mode phantom's physics, measured: speckle statistics and grain, lesion masks, the fan,
shadows, attenuation/TGC, cine coherence, determinism and the scanner-screen chrome."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys

import cv2
import numpy as np
import pytest

from usfm_edge.data import phantom as P
from usfm_edge.data.phantom import Geometry, LesionKind, Motion, PhantomConfig, Posterior

FWHM_PER_SIGMA = 2 * math.sqrt(2 * math.log(2))  # speckle intensity autocovariance ~ |PSF|^2
HOMOGENEOUS = PhantomConfig(size=(192, 192), organ="liver", geometry=Geometry.LINEAR, n_lesions=(0, 0),
                            texture=False, attenuation_db_cm_mhz=0.0, tgc=0.0)


def homogeneous(**changes) -> PhantomConfig:
    return dataclasses.replace(HOMOGENEOUS, **changes)


def interior(a: np.ndarray, border: int = 12) -> np.ndarray:
    return a[border:-border, border:-border]


def one_lesion(kind: LesionKind, posterior: Posterior = Posterior.NONE, *, malignant: bool = False,
               size: int = 160, geometry: Geometry = Geometry.LINEAR) -> PhantomConfig:
    return PhantomConfig(size=(size, size), organ="thyroid", geometry=geometry, n_lesions=(1, 1),
                         p_malignant=float(malignant), lesion_kind=kind, posterior=posterior, texture=False)


def ring_around(mask: np.ndarray, inner: int = 3, outer: int = 8) -> np.ndarray:
    m = mask.astype(np.uint8)
    grow = lambda r: cv2.dilate(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))) > 0
    return grow(outer) & ~grow(inner)


def solidity(mask: np.ndarray) -> float:
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    c = max(contours, key=cv2.contourArea)
    return cv2.contourArea(c) / cv2.contourArea(cv2.convexHull(c))


def test_import_pulls_no_torch():
    code = "import usfm_edge.data.phantom, sys; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_presets_and_config_validation():
    assert {"liver", "thyroid", "breast", "kidney"} <= set(P.list_organs())
    assert P.list_organs() == sorted(P.ORGANS)
    with pytest.raises(ValueError, match="unknown organ"):
        PhantomConfig(organ="spleen-of-mars")


def test_frame_contract():
    f = P.render(PhantomConfig(size=(96, 128), organ="kidney", n_lesions=(2, 2), p_malignant=0.0), 0)
    for a in (f.image, f.clean, f.mask):
        assert a.shape == (96, 128) and a.dtype == np.uint8
    assert f.envelope.shape == f.envelope_polar.shape == (96, 128) and f.envelope.dtype == np.float32
    assert f.scan_mask.dtype == bool and f.geometry is Geometry.CURVILINEAR and f.organ == "kidney"
    assert f.label == "benign" and len(f.lesions) == 2
    assert set(np.unique(f.mask)) <= {0, 1, 2}
    for info in f.lesions:
        r, c = (int(round(v)) for v in info.center)
        assert f.mask[r, c] == info.id  # the (convex-ish benign) lesion's centre lies in its own mask
    linear = P.render(PhantomConfig(size=(64, 64), geometry=Geometry.LINEAR, depth_cm=4.0, n_lesions=(0, 0)), 0)
    assert linear.spacing_mm == pytest.approx(40.0 / 64) and linear.label == "normal"


def test_speckle_is_fully_developed_rayleigh():
    # Rayleigh: mean/std = sqrt(pi / (4 - pi)) = 1.913, measured before log compression.
    snrs = [P.envelope_snr(interior(P.render(HOMOGENEOUS, seed).envelope_polar, 16)) for seed in (0, 1)]
    assert 1.75 < np.mean(snrs) < 2.05, snrs
    assert np.mean(snrs) == pytest.approx(P.RAYLEIGH_SNR, abs=0.1)


def test_speckle_in_the_fan_is_rayleigh_too():
    f = P.render(homogeneous(geometry=Geometry.CURVILINEAR), 0)
    assert 1.75 < P.envelope_snr(f.envelope_polar[60:150, 30:-30]) < 2.05


def test_speckle_grain_follows_the_psf():
    def grain(sa: float, sl: float) -> tuple[float, float]:
        env = [interior(P.render(homogeneous(psf_axial_sigma_px=sa, psf_lateral_sigma_px=sl), s).envelope_polar, 16)
               for s in (0, 1)]
        return (np.mean([P.autocorrelation_width(e, axis=0) for e in env]),
                np.mean([P.autocorrelation_width(e, axis=1) for e in env]))

    axial, lateral = grain(1.5, 3.0)
    # Envelope autocovariance width ~ FWHM of |PSF|^2 = 2.355 sigma.
    assert 0.75 < axial / (FWHM_PER_SIGMA * 1.5) < 1.33
    assert 0.75 < lateral / (FWHM_PER_SIGMA * 3.0) < 1.33
    assert 1.6 < lateral / axial < 2.5  # PSF aspect ratio 2
    wider = grain(1.5, 6.0)[1]
    assert 1.6 < wider / lateral < 2.4  # doubling the beam width doubles the grain
    longer = grain(3.0, 3.0)[0]
    assert 1.6 < longer / axial < 2.4


def test_speckle_is_not_pixel_noise():
    env = interior(P.render(HOMOGENEOUS, 0).envelope_polar, 16)
    lag1 = np.corrcoef(env[:, :-1].ravel(), env[:, 1:].ravel())[0, 1]
    assert lag1 > 0.7  # neighbouring pixels share a speckle grain


@pytest.mark.parametrize("kind,darker,margin", [(LesionKind.HYPOECHOIC, True, 20), (LesionKind.ANECHOIC, True, 50),
                                                (LesionKind.HYPERECHOIC, False, 15)])
def test_masks_align_with_lesions(kind, darker, margin):
    # Levels are 8-bit display values (55 dB over 255): 20 levels ~ 4.3 dB.
    for seed in (0, 1):
        f = P.render(one_lesion(kind), seed)
        lesion, ring = f.mask == 1, ring_around(f.mask == 1)
        assert lesion.sum() > 50 and f.lesions[0].kind is kind
        for img in (f.clean, f.image):  # speckle must not hide it either
            inside, outside = img[lesion].astype(float).mean(), img[ring].astype(float).mean()
            assert (outside - inside if darker else inside - outside) > margin, (kind, img is f.clean, inside, outside)


def test_masks_align_in_the_fan():
    f = P.render(one_lesion(LesionKind.ANECHOIC, geometry=Geometry.CURVILINEAR), 3)
    lesion, ring = f.mask == 1, ring_around(f.mask == 1) & f.scan_mask
    assert f.clean[lesion].mean() < f.clean[ring].mean() - 40


def test_fan_geometry_and_scan_mask():
    f = P.render(PhantomConfig(size=(128, 128), geometry=Geometry.CURVILINEAR, n_lesions=(1, 2)), 0)
    outside = ~f.scan_mask
    assert outside.any() and np.all(f.image[outside] == 0) and np.all(f.clean[outside] == 0)
    assert np.all(f.mask[outside] == 0)
    h, w = f.scan_mask.shape
    assert not f.scan_mask[0, 0] and not f.scan_mask[0, w - 1]  # apex above: top corners outside
    assert not f.scan_mask[h - 1, 0] and not f.scan_mask[h - 1, w - 1]  # the arc's ends are higher
    centre = np.nonzero(f.scan_mask[:, w // 2])[0]
    assert np.all(np.diff(centre) == 1) and f.scan_mask[h // 2, w // 2]
    # The centre beam is the whole depth long; the convex face bulges down: its ends touch the
    # top row, its centre is lower.
    assert len(centre) == pytest.approx(f.depth_cm * 10 / f.spacing_mm, abs=1.5)
    assert f.scan_mask[0].any() and centre[0] >= 2
    assert (f.image[f.scan_mask] > 0).mean() > 0.95
    linear = P.render(PhantomConfig(size=(64, 80), geometry=Geometry.LINEAR), 0)
    assert linear.scan_mask.all()


def _below_vs_beside(f) -> tuple[float, float]:
    """Mean clean level in the column under the lesion and in the columns either side of it."""
    rows, cols = np.nonzero(f.mask == 1)
    c0, c1, bottom = cols.min(), cols.max(), rows.max()
    span = (c1 - c0) // 4
    below = f.clean[bottom + 4:-4, c0 + span:c1 - span + 1]
    beside = np.hstack([f.clean[bottom + 4:-4, max(c0 - 25, 0):c0 - 6], f.clean[bottom + 4:-4, c1 + 7:c1 + 26]])
    return below.astype(float).mean(), beside.astype(float).mean()


def test_posterior_shadow_and_enhancement():
    for seed in (0, 1):
        shadowed = P.render(one_lesion(LesionKind.HYPERECHOIC, Posterior.SHADOW), seed)
        below, beside = _below_vs_beside(shadowed)
        assert below < beside - 30, (below, beside)  # >= 12 dB of extra attenuation
        cyst = P.render(one_lesion(LesionKind.ANECHOIC, Posterior.ENHANCEMENT), seed)
        below, beside = _below_vs_beside(cyst)
        assert below > beside + 12, (below, beside)
    plain = P.render(one_lesion(LesionKind.HYPERECHOIC, Posterior.NONE), 0)
    below, beside = _below_vs_beside(plain)
    assert abs(below - beside) < 4


def test_malignant_outlines_are_less_solid():
    benign = [solidity(P.render(one_lesion(LesionKind.HYPOECHOIC, size=128), s).mask > 0) for s in range(4)]
    malignant = [solidity(P.render(one_lesion(LesionKind.HYPOECHOIC, malignant=True, size=128), s).mask > 0)
                 for s in range(4)]
    assert min(benign) > 0.93 and max(malignant) < 0.82, (benign, malignant)
    f = P.render(one_lesion(LesionKind.HYPOECHOIC, malignant=True, size=96), 0)
    assert f.label == "malignant" and f.lesions[0].malignant


def test_attenuation_and_tgc():
    def depth_profile(**changes) -> np.ndarray:
        clean = P.render(homogeneous(attenuation_db_cm_mhz=0.5, size=(128, 64), **changes), 0).clean
        return clean[8:-8].astype(float).mean(axis=1)

    raw = depth_profile(tgc=0.0)
    assert raw[:10].mean() - raw[-10:].mean() > 60  # 0.5 dB/cm/MHz x 3.5 MHz x 2 x 14 cm = 49 dB
    assert np.all(np.diff(raw) <= 0)
    compensated = depth_profile(tgc=0.85, tgc_ripple_db=0.0)
    drop = compensated[:10].mean() - compensated[-10:].mean()
    assert 0 < drop < (raw[:10].mean() - raw[-10:].mean()) / 3  # mostly, not perfectly, compensated
    flat = depth_profile(tgc=1.0, tgc_ripple_db=0.0)
    assert np.ptp(flat) < 2


def test_log_compression_dynamic_range():
    narrow = P.render(homogeneous(dynamic_range_db=40.0), 0).image
    wide = P.render(homogeneous(dynamic_range_db=70.0), 0).image
    assert narrow.std() > wide.std() * 1.4  # a narrower range spreads the same speckle over more levels


def test_cine_speckle_persists_and_moves_with_tissue():
    config = PhantomConfig(size=(128, 128), organ="liver", n_lesions=(1, 1))
    frames = P.render_cine(config, 4, rng=5)
    for a, b in zip(frames, frames[1:]):
        r = np.corrcoef(a.envelope_polar.ravel(), b.envelope_polar.ravel())[0, 1]
        assert 0.5 < r < 0.9999 and not np.array_equal(a.image, b.image)
    # An independent redraw of the same scene is uncorrelated: persistence is not an accident.
    other = P.render_cine(config, 1, rng=6)[0]
    assert abs(np.corrcoef(frames[0].envelope_polar.ravel(), other.envelope_polar.ravel())[0, 1]) < 0.3


def test_cine_pure_translation_shifts_speckle_and_mask():
    config = homogeneous(size=(96, 96), n_lesions=(1, 1), lesion_kind=LesionKind.HYPOECHOIC, p_malignant=0.0)
    spacing = P.render(config, 0).spacing_mm
    motion = Motion(drift_mm=(spacing, 0.0), sway_mm=(0.0, 0.0), rotation_deg=0.0, breathing_mm=0.0)
    f0, f1, f2 = P.render_cine(config, 3, rng=2, motion=motion)
    # One pixel to the right per frame: same scatterers, so the speckle is the same, shifted.
    r = np.corrcoef(f1.envelope_polar[:, 1:].ravel(), f0.envelope_polar[:, :-1].ravel())[0, 1]
    assert r > 0.999
    centroid = [np.argwhere(f.mask == 1).mean(axis=0) for f in (f0, f1, f2)]
    assert centroid[1][1] - centroid[0][1] == pytest.approx(1.0, abs=0.15)
    assert centroid[2][1] - centroid[0][1] == pytest.approx(2.0, abs=0.15)
    assert centroid[2][0] == pytest.approx(centroid[0][0], abs=0.15)
    assert f2.lesions[0].center[1] - f0.lesions[0].center[1] == pytest.approx(2.0)


def test_cine_mask_follows_default_motion():
    config = PhantomConfig(size=(128, 128), organ="liver", n_lesions=(1, 1), p_malignant=0.0)
    motion = Motion(drift_mm=(0.3, 0.1), breathing_mm=1.5)
    frames = P.render_cine(config, 3, rng=1, motion=motion)
    first, last = frames[0].mask == 1, frames[-1].mask == 1
    assert not np.array_equal(first, last)
    for f in frames:  # the mask stays on the (dark) lesion in every frame
        lesion = f.mask == 1
        assert f.clean[lesion].mean() < f.clean[ring_around(lesion) & f.scan_mask].mean() - 10


def test_same_seed_same_output():
    config = PhantomConfig(size=(64, 64), n_lesions=(1, 2))
    a, b, c = P.render(config, 11), P.render(config, 11), P.render(config, 12)
    for name in ("image", "clean", "envelope", "mask"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.image, c.image)
    cine_a = P.render_cine(config, 2, rng=np.random.default_rng(3))
    cine_b = P.render_cine(config, 2, rng=np.random.default_rng(3))
    assert all(np.array_equal(x.image, y.image) and np.array_equal(x.mask, y.mask) for x, y in zip(cine_a, cine_b))


@pytest.mark.parametrize("canvas_size,color", [((480, 640), False), ((1080, 1920), True)])
def test_ui_chrome_box_holds_the_image(canvas_size, color):
    image = P.render(PhantomConfig(size=(128, 160), n_lesions=(0, 1)), 0).image
    screen, (x, y, w, h) = P.add_ui_chrome(image, canvas_size=canvas_size, rng=4, depth_cm=14.0, color=color,
                                           text={"organ": "LIVER"})
    assert screen.shape[:2] == canvas_size and screen.dtype == np.uint8
    assert screen.ndim == (3 if color else 2)
    assert (w, h) == (160, 128)
    crop = screen[y:y + h, x:x + w]
    assert np.array_equal(crop, np.repeat(image[..., None], 3, axis=2) if color else image)
    outside = np.ones(canvas_size, dtype=bool)
    outside[y:y + h, x:x + w] = False
    gray = screen if screen.ndim == 2 else screen.max(axis=2)
    assert (gray[outside] > 128).sum() > 200  # text, ruler and gray bar


def test_ui_chrome_fit_and_overflow():
    image = np.full((600, 600), 90, dtype=np.uint8)
    with pytest.raises(ValueError, match="does not fit"):
        P.add_ui_chrome(image, canvas_size=(480, 640), rng=0)
    screen, (x, y, w, h) = P.add_ui_chrome(image, canvas_size=(480, 640), rng=0, scale=None)
    assert h <= 480 and w <= 640 and np.all(screen[y:y + h, x:x + w] == 90)


def test_helpers_on_known_signals():
    rng = np.random.default_rng(0)
    rayleigh = np.abs(rng.standard_normal(200_000) + 1j * rng.standard_normal(200_000))
    assert P.envelope_snr(rayleigh) == pytest.approx(P.RAYLEIGH_SNR, rel=0.02)
    white = rng.standard_normal((256, 256))
    assert P.autocorrelation_width(white, axis=0) < 1.5
    smooth = cv2.GaussianBlur(white, (0, 0), sigmaX=1.0, sigmaY=4.0)
    # Gaussian blur sigma s: autocovariance is Gaussian with sigma s*sqrt(2), FWHM = 2.355*sqrt(2)*s.
    assert P.autocorrelation_width(smooth, axis=0) == pytest.approx(FWHM_PER_SIGMA * math.sqrt(2) * 4, rel=0.15)
    assert P.autocorrelation_width(smooth, axis=1) == pytest.approx(FWHM_PER_SIGMA * math.sqrt(2) * 1, rel=0.2)


def test_frame_time_is_small():
    import time

    config = PhantomConfig(size=(256, 256), n_lesions=(2, 2))
    P.render(config, 0)
    start = time.perf_counter()
    P.render(config, 1)
    assert time.perf_counter() - start < 1.5  # well under 0.5 s on an idle core; slack for CI
