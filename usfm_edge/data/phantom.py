"""Synthetic B-mode ultrasound phantom grounded in the speckle physics (numpy + OpenCV, no torch).

Pipeline of one frame, in the order a scanner works:

1. Tissue lives in its own coordinates (mm): an organ's echogenicity (near-field layers, a
   low-frequency structure field, lesions with exact analytic boundaries) and a fixed cloud of
   point scatterers with circular-Gaussian complex amplitudes scaled by that echogenicity.
2. Motion maps tissue to probe coordinates; scatterers are moved, never redrawn, so speckle
   persists and travels with the tissue across a cine.
3. The scatterers are splatted onto the simulation grid (depth x lateral, or depth x angle for a
   convex probe) and convolved with a complex PSF (Gaussian envelope times an axial carrier).
   The envelope ``|RF analytic|`` is Rayleigh in homogeneous tissue: mean/std = 1.913.
4. Round-trip depth attenuation, imperfect TGC and posterior shadowing/enhancement (extra
   attenuation accumulated along each beam) scale the envelope.
5. Log compression to 8 bits, then scan conversion (``cv2.remap``) to a Cartesian image.

The clean target is the same chain without speckle; masks are evaluated analytically at the
Cartesian pixels, so they align with the lesions in ``image`` and ``clean``.
"""

from __future__ import annotations

import datetime
import enum
import math
from dataclasses import dataclass

import cv2
import numpy as np

EULER_GAMMA = 0.5772156649015329
RAYLEIGH_SNR = math.sqrt(math.pi / (4 - math.pi))  # mean/std of a Rayleigh variable, 1.913


class Geometry(str, enum.Enum):
    LINEAR = "linear"            # rectangle: parallel beams
    CURVILINEAR = "curvilinear"  # fan: beams from a virtual apex above the image


class LesionKind(str, enum.Enum):
    HYPOECHOIC = "hypoechoic"
    ANECHOIC = "anechoic"        # cyst: (almost) no scatterers
    HYPERECHOIC = "hyperechoic"


class Posterior(str, enum.Enum):
    NONE = "none"
    SHADOW = "shadow"            # calcified / many malignant masses attenuate more than tissue
    ENHANCEMENT = "enhancement"  # fluid attenuates less, so tissue behind it looks brighter


# Echogenicity of a lesion relative to the surrounding tissue (uniform range per kind).
_LESION_ECHO = {LesionKind.HYPOECHOIC: (0.15, 0.4), LesionKind.ANECHOIC: (0.02, 0.02),
                LesionKind.HYPERECHOIC: (2.2, 3.5)}
# Gain change (dB) behind a lesion, accumulated over one diameter of beam path inside it.
_POSTERIOR_DB = {Posterior.NONE: (0.0, 0.0), Posterior.SHADOW: (-20.0, -12.0),
                 Posterior.ENHANCEMENT: (5.0, 9.0)}


@dataclass(frozen=True)
class OrganPreset:
    """Tissue and lesion statistics of one organ. Echogenicities are relative (1 = reference)."""

    name: str
    echogenicity: float                       # mean scatterer amplitude of the parenchyma
    scatterer_density: float                  # scatterers per image pixel area (>~2: fully developed)
    structure: float                          # std of the log of the low-frequency tissue field
    structure_scale_mm: float                 # its axial correlation length
    structure_aspect: float                   # lateral / axial correlation (fibres, lobules)
    layers: tuple[tuple[float, float], ...]   # (thickness mm, echogenicity) from the skin down
    lesion_kinds: tuple[tuple[LesionKind, float], ...]  # benign kinds with sampling weights
    lesion_radius_frac: tuple[float, float]   # lesion radius as a fraction of the depth
    p_calcified: float                        # P(benign hyperechoic lesion shadows)
    geometry: Geometry
    depth_cm: float
    frequency_mhz: float


_SKIN = (1.5, 2.0)
ORGANS: dict[str, OrganPreset] = {p.name: p for p in (
    OrganPreset("liver", 1.0, 4.0, 0.15, 6.0, 1.0, (_SKIN, (8.0, 0.55), (6.0, 0.8)),
                ((LesionKind.HYPOECHOIC, 0.4), (LesionKind.ANECHOIC, 0.3), (LesionKind.HYPERECHOIC, 0.3)),
                (0.04, 0.09), 0.15, Geometry.CURVILINEAR, 14.0, 3.5),
    OrganPreset("kidney", 0.8, 4.0, 0.25, 8.0, 1.5, (_SKIN, (10.0, 0.55), (10.0, 0.85)),
                ((LesionKind.ANECHOIC, 0.6), (LesionKind.HYPERECHOIC, 0.3), (LesionKind.HYPOECHOIC, 0.1)),
                (0.03, 0.08), 0.7, Geometry.CURVILINEAR, 12.0, 3.5),
    OrganPreset("thyroid", 1.3, 4.0, 0.12, 2.0, 1.0, ((0.8, 2.0), (2.5, 0.5), (4.0, 0.7)),
                ((LesionKind.HYPOECHOIC, 0.5), (LesionKind.ANECHOIC, 0.3), (LesionKind.HYPERECHOIC, 0.2)),
                (0.06, 0.14), 0.4, Geometry.LINEAR, 4.0, 10.0),
    OrganPreset("breast", 0.8, 2.0, 0.4, 3.0, 2.5, ((1.0, 2.0), (6.0, 0.5)),
                ((LesionKind.HYPOECHOIC, 0.6), (LesionKind.ANECHOIC, 0.35), (LesionKind.HYPERECHOIC, 0.05)),
                (0.06, 0.14), 0.2, Geometry.LINEAR, 4.5, 10.0),
    OrganPreset("muscle", 0.7, 3.0, 0.35, 1.5, 6.0, ((1.0, 2.0), (4.0, 0.5)),
                ((LesionKind.HYPOECHOIC, 0.5), (LesionKind.ANECHOIC, 0.3), (LesionKind.HYPERECHOIC, 0.2)),
                (0.05, 0.12), 0.3, Geometry.LINEAR, 5.0, 8.0),
)}


def list_organs() -> list[str]:
    return sorted(ORGANS)


@dataclass
class PhantomConfig:
    """One phantom. ``None`` fields take the organ preset's value. PSF sigmas are in image pixels
    (speckle grain is seen in pixels); resolution is constant in mm, so in a fan the lateral
    sigma in simulation lines grows towards the apex."""

    size: tuple[int, int] = (256, 256)        # (H, W) of the B-mode image and the simulation grid
    organ: str = "liver"
    geometry: Geometry | None = None
    depth_cm: float | None = None             # imaging depth along the beam
    frequency_mhz: float | None = None        # sets attenuation (dB/cm/MHz x MHz)
    sector_deg: float = 60.0                  # curvilinear: angular span of the fan
    probe_radius_mm: float = 40.0             # curvilinear: apex to probe face
    psf_axial_sigma_px: float = 1.5
    psf_lateral_sigma_px: float = 2.5
    carrier_cycles: float = 2.0               # carrier cycles within the axial FWHM of the pulse
    scatterer_density: float | None = None
    texture: bool = True                      # False: homogeneous tissue (no layers, no structure)
    attenuation_db_cm_mhz: float = 0.5
    tgc: float = 0.85                         # fraction of the round-trip attenuation TGC undoes
    tgc_ripple_db: float = 1.0                # slider-to-slider error of a hand-set TGC (if tgc > 0)
    dynamic_range_db: float = 55.0
    gain_db: float = -24.0                    # display level of unit echogenicity below white
    n_lesions: tuple[int, int] = (0, 2)       # inclusive range (fewer if they do not fit)
    p_malignant: float = 0.4
    lesion_kind: LesionKind | None = None     # force every lesion's kind
    posterior: Posterior | None = None        # force every lesion's posterior artefact

    def __post_init__(self) -> None:
        if self.organ not in ORGANS:
            raise ValueError(f"unknown organ {self.organ!r}; choose from {list_organs()}")
        if min(self.size) < 16:
            raise ValueError(f"size {self.size} is too small (>= 16 x 16)")


@dataclass(frozen=True)
class Motion:
    """Tissue motion relative to the probe, per frame index t. Lengths in mm, angles in degrees.
    Sway and rotation are the hand's tremor; breathing is a periodic elastic deformation."""

    drift_mm: tuple[float, float] = (0.0, 0.0)   # (lateral, axial) per frame: a slow sweep
    sway_mm: tuple[float, float] = (0.4, 0.2)
    sway_period: float = 48.0
    rotation_deg: float = 1.0
    rotation_period: float = 64.0
    breathing_mm: float = 0.8
    breathing_period: float = 32.0

    def __post_init__(self) -> None:
        if min(self.sway_period, self.rotation_period, self.breathing_period) <= 0:
            raise ValueError("motion periods must be > 0 frames")

    @classmethod
    def static(cls) -> Motion:
        return cls((0.0, 0.0), (0.0, 0.0), 1.0, 0.0, 1.0, 0.0, 1.0)


@dataclass
class LesionInfo:
    id: int                                   # its value in ``PhantomFrame.mask``
    kind: LesionKind
    malignant: bool
    posterior: Posterior
    center: tuple[float, float]               # (row, col) in the image, in this frame
    radius_mm: float


@dataclass
class PhantomFrame:
    """One rendered frame. All (H, W) arrays are Cartesian and pixel-aligned."""

    image: np.ndarray            # (H, W) uint8 log-compressed B-mode, 0 outside the fan
    clean: np.ndarray            # (H, W) uint8 the same chain without speckle (enhancement target)
    envelope: np.ndarray         # (H, W) float32 envelope after gains, before log compression;
                                 # a fan's is scan-converted (interpolation smooths speckle)
    envelope_polar: np.ndarray   # (H, W) float32 the same on the simulation grid (depth x line):
                                 # measure speckle statistics here
    mask: np.ndarray             # (H, W) uint8 0 = background, k = lesion with id k
    scan_mask: np.ndarray        # (H, W) bool the scan region (fan)
    lesions: list[LesionInfo]
    label: str                   # "normal" | "benign" | "malignant"
    spacing_mm: float            # mm per pixel (square pixels); linear: depth_cm * 10 / H
    organ: str
    geometry: Geometry
    depth_cm: float
    index: int = 0               # frame number in a cine


# --------------------------------------------------------------------------- geometry


@dataclass
class _Probe:
    """Sim grid <-> probe coordinates (mm; x lateral, z depth, origin at the probe face centre)
    and Cartesian image pixels <-> probe coordinates."""

    geometry: Geometry
    shape: tuple[int, int]
    depth_mm: float
    spacing: float               # Cartesian mm per pixel
    z_top: float                 # probe z of the top image edge
    r0: float = 0.0              # curvilinear: apex to face
    half_angle: float = 0.0

    @property
    def dr(self) -> float:       # mm per simulation row, along the beam
        return self.depth_mm / self.shape[0]

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        h, w = self.shape
        return (-w * self.spacing / 2, w * self.spacing / 2, self.z_top, self.z_top + h * self.spacing)

    def sim_to_probe(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = self.shape
        if self.geometry is Geometry.LINEAR:
            return (cols + 0.5 - w / 2) * self.spacing, (rows + 0.5) * self.spacing
        r = self.r0 + (rows + 0.5) * self.dr
        theta = -self.half_angle + (cols + 0.5) * (2 * self.half_angle / w)
        return r * np.sin(theta), r * np.cos(theta) - self.r0

    def probe_to_sim(self, x: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = self.shape
        if self.geometry is Geometry.LINEAR:
            return z / self.spacing - 0.5, x / self.spacing + w / 2 - 0.5
        r, theta = np.hypot(x, z + self.r0), np.arctan2(x, z + self.r0)
        return (r - self.r0) / self.dr - 0.5, (theta + self.half_angle) * (w / (2 * self.half_angle)) - 0.5

    def pixel_to_probe(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (cols + 0.5 - self.shape[1] / 2) * self.spacing, self.z_top + (rows + 0.5) * self.spacing

    def cell_area(self, rows: np.ndarray) -> np.ndarray:
        """mm^2 of a simulation cell at these rows: constant (linear) or growing with radius."""
        if self.geometry is Geometry.LINEAR:
            return np.full(np.shape(rows), self.spacing ** 2)
        r = np.maximum(self.r0 + (rows + 0.5) * self.dr, 0.5 * self.r0)
        return self.dr * r * (2 * self.half_angle / self.shape[1])

    def skin_depth(self, x: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Distance below the probe face; the skin conforms to the face, so layers follow it."""
        return z if self.geometry is Geometry.LINEAR else np.hypot(x, z + self.r0) - self.r0


def _make_probe(config: PhantomConfig, preset: OrganPreset) -> _Probe:
    h, w = config.size
    geometry = Geometry(config.geometry or preset.geometry)
    depth_mm = 10.0 * (config.depth_cm or preset.depth_cm)
    if geometry is Geometry.LINEAR:
        return _Probe(geometry, (h, w), depth_mm, depth_mm / h, 0.0)
    r0, half = config.probe_radius_mm, math.radians(config.sector_deg) / 2
    # Fit the fan's bounding box (top corners at the face's ends, bottom at the centre beam).
    z_top, width = r0 * math.cos(half) - r0, 2 * (r0 + depth_mm) * math.sin(half)
    spacing = max((depth_mm - z_top) / h, width / w)
    return _Probe(geometry, (h, w), depth_mm, spacing, z_top, r0, half)


def _scan_conversion_maps(probe: _Probe) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float32 remap maps (sim col, sim row) per Cartesian pixel and the bool fan mask."""
    h, w = probe.shape
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    x, z = probe.pixel_to_probe(rows, cols)
    srow, scol = probe.probe_to_sim(x, z)
    inside = (srow >= -0.5) & (srow <= h - 0.5) & (scol >= -0.5) & (scol <= w - 0.5)
    if probe.geometry is Geometry.CURVILINEAR:
        inside &= z + probe.r0 > 0  # the half plane above the apex maps back into the fan
    return scol.astype(np.float32), srow.astype(np.float32), inside


# --------------------------------------------------------------------------- tissue


@dataclass
class _Lesion:
    """A closed shape in tissue mm: an ellipse whose radius is modulated by a radial function."""

    center: tuple[float, float]
    axes: tuple[float, float]
    angle: float
    profile: np.ndarray          # (2048,) boundary radius over _PROFILE_ANGLES, in axis units
    kind: LesionKind
    malignant: bool
    posterior: Posterior
    echo: float
    posterior_db: float
    edge_mm: float

    @property
    def radius(self) -> float:
        return math.sqrt(self.axes[0] * self.axes[1])

    def boundary(self, theta: np.ndarray) -> np.ndarray:
        return np.interp(theta, _PROFILE_ANGLES, self.profile, period=2 * np.pi)

    def coverage(self, x: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Fraction of the point inside, soft over ``edge_mm`` so sampling does not alias;
        ``>= 0.5`` is exactly the shape."""
        out = np.zeros(np.shape(x))
        reach = max(self.axes) * float(self.profile.max()) + self.edge_mm
        dx, dz = x - self.center[0], z - self.center[1]
        near = (np.abs(dx) < reach) & (np.abs(dz) < reach)
        c, s = math.cos(self.angle), math.sin(self.angle)
        u = (dx[near] * c + dz[near] * s) / self.axes[0]
        v = (-dx[near] * s + dz[near] * c) / self.axes[1]
        inside_mm = (self.boundary(np.arctan2(v, u)) - np.hypot(u, v)) * self.radius
        out[near] = np.clip(0.5 + inside_mm / self.edge_mm, 0.0, 1.0)
        return out


# The outline is tabulated once: evaluating spikes per point would dominate the render time.
_PROFILE_ANGLES = np.linspace(-np.pi, np.pi, 2048, endpoint=False)


def _radial_profile(rng: np.random.Generator, malignant: bool) -> np.ndarray:
    """Boundary radius over angle. Benign: a nearly smooth oval. Malignant: a lobulated outline
    (random harmonics) plus narrow spikes (spiculae), so its solidity is clearly lower."""
    theta = _PROFILE_ANGLES
    orders = np.arange(2.0, 8.0) if malignant else np.array([2.0, 3.0])
    amps = rng.uniform(0.03, 0.10, orders.size) / np.sqrt(orders - 1) if malignant else rng.uniform(0, 0.04, 2)
    phases = rng.uniform(0, 2 * np.pi, orders.size)
    rho = 1.0 + (amps[:, None] * np.cos(orders[:, None] * theta + phases[:, None])).sum(0)
    n = int(rng.integers(6, 13)) if malignant else 0
    for at, height, width in zip(rng.uniform(-np.pi, np.pi, n), rng.uniform(0.25, 0.6, n), rng.uniform(0.04, 0.09, n)):
        d = (theta - at + np.pi) % (2 * np.pi) - np.pi
        rho += height * np.exp(-0.5 * (d / width) ** 2)
    return np.maximum(rho, 0.3)


def _sample_lesion(rng: np.random.Generator, config: PhantomConfig, preset: OrganPreset,
                   center: tuple[float, float], radius: float, edge_mm: float) -> _Lesion:
    malignant = bool(rng.random() < config.p_malignant)
    if config.lesion_kind is not None:
        kind = config.lesion_kind
    elif malignant:  # carcinomas are mostly hypoechoic; some are echogenic
        kind = LesionKind.HYPOECHOIC if rng.random() < 0.85 else LesionKind.HYPERECHOIC
    else:
        kinds, weights = zip(*preset.lesion_kinds)
        kind = kinds[int(rng.choice(len(kinds), p=np.array(weights) / sum(weights)))]
    if config.posterior is not None:
        posterior = config.posterior
    elif kind is LesionKind.ANECHOIC:
        posterior = Posterior.ENHANCEMENT
    elif malignant:
        posterior = Posterior.SHADOW if rng.random() < 0.6 else Posterior.NONE
    else:
        posterior = Posterior.SHADOW if kind is LesionKind.HYPERECHOIC and rng.random() < preset.p_calcified \
            else Posterior.NONE
    profile = _radial_profile(rng, malignant)
    aspect = rng.uniform(0.65, 1.0) if not malignant else rng.uniform(0.8, 1.2)  # benign: wider than tall
    axes = (radius / math.sqrt(aspect), radius * math.sqrt(aspect))
    return _Lesion(center, axes, float(rng.uniform(-0.3, 0.3)), profile, kind, malignant,
                   posterior, float(rng.uniform(*_LESION_ECHO[kind])),
                   float(rng.uniform(*_POSTERIOR_DB[posterior])), edge_mm)


def _place_lesions(rng: np.random.Generator, config: PhantomConfig, preset: OrganPreset,
                   probe: _Probe) -> list[_Lesion]:
    """Non-overlapping lesions below the near-field layers, with room beneath for their artefacts."""
    n = int(rng.integers(config.n_lesions[0], config.n_lesions[1] + 1))
    top = sum(t for t, _ in preset.layers) if config.texture else 0.0
    h, w = probe.shape
    lesions: list[_Lesion] = []
    for _ in range(60 * n):
        if len(lesions) == n:
            break
        radius = rng.uniform(*preset.lesion_radius_frac) * probe.depth_mm
        depth = rng.uniform(top + 1.3 * radius + 1.0, max(top + 1.3 * radius + 1.0, 0.75 * probe.depth_mm - radius))
        col = rng.uniform(0.25, 0.75) * w
        x, z = probe.sim_to_probe(np.array(depth / probe.dr - 0.5), np.array(col))
        reach = 1.6 * radius  # spikes reach beyond the nominal radius
        if any(math.hypot(x - o.center[0], z - o.center[1]) < reach + 1.6 * o.radius + 1.0 for o in lesions):
            continue
        lesions.append(_sample_lesion(rng, config, preset, (float(x), float(z)), radius, probe.spacing))
    return lesions


@dataclass
class _Field:
    """A smooth random raster in tissue mm, bilinearly sampled (edge values beyond it)."""

    values: np.ndarray
    origin: tuple[float, float]
    step: float

    def sample(self, x: np.ndarray, z: np.ndarray) -> np.ndarray:
        fc = np.clip((x - self.origin[0]) / self.step, 0, self.values.shape[1] - 1.001)
        fr = np.clip((z - self.origin[1]) / self.step, 0, self.values.shape[0] - 1.001)
        c, r = fc.astype(np.intp), fr.astype(np.intp)
        tc, tr = fc - c, fr - r
        v = self.values
        top = v[r, c] * (1 - tc) + v[r, c + 1] * tc
        return top * (1 - tr) + (v[r + 1, c] * (1 - tc) + v[r + 1, c + 1] * tc) * tr


def _structure_field(rng: np.random.Generator, bounds: tuple[float, float, float, float],
                     preset: OrganPreset, enabled: bool) -> _Field:
    """Log-normal tissue structure: blurred white noise, normalised to the preset's std."""
    x0, x1, z0, z1 = bounds
    step = preset.structure_scale_mm / 3  # the field is smooth; a coarse raster suffices
    shape = (int((z1 - z0) / step) + 2, int((x1 - x0) / step) + 2)
    if not enabled or preset.structure <= 0:
        return _Field(np.ones(shape), (x0, z0), step)
    noise = cv2.GaussianBlur(rng.standard_normal(shape), (0, 0), sigmaX=3.0 * preset.structure_aspect, sigmaY=3.0)
    noise = (noise - noise.mean()) / (noise.std() + 1e-12)
    return _Field(np.exp(preset.structure * noise), (x0, z0), step)


@dataclass
class _Scene:
    config: PhantomConfig
    preset: OrganPreset
    probe: _Probe
    lesions: list[_Lesion]
    structure: _Field
    tgc_db: np.ndarray           # (H,) net depth gain per simulation row
    motion: Motion
    deform_phase: float
    density_mm2: float           # scatterers per mm^2 of tissue
    scat_x: np.ndarray           # (N,) scatterer positions in tissue mm, fixed for a cine
    scat_z: np.ndarray
    scat_amp: np.ndarray         # (N,) complex amplitudes, echogenicity included


def _echogenicity(scene: _Scene, x: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Tissue reflectivity at tissue points, and each lesion's coverage there."""
    echo = np.full(np.shape(x), scene.preset.echogenicity)
    if scene.config.texture:
        depth = scene.probe.skin_depth(x, z)
        edge = 0.0
        for thickness, value in scene.preset.layers:
            echo = np.where((depth >= edge) & (depth < edge + thickness), value, echo)
            edge += thickness
        if scene.preset.structure > 0:
            echo = echo * scene.structure.sample(x, z)
    coverages = [lesion.coverage(x, z) for lesion in scene.lesions]
    for lesion, cov in zip(scene.lesions, coverages):
        echo = echo * (1.0 + cov * (lesion.echo - 1.0))
    return echo, coverages


def _depth_gain_db(rng: np.random.Generator, config: PhantomConfig, preset: OrganPreset, probe: _Probe) -> np.ndarray:
    """Round-trip attenuation minus TGC per simulation row; TGC sliders are set by hand, so
    each of 8 carries a small error, interpolated over depth."""
    depth_cm = (np.arange(probe.shape[0]) + 0.5) * probe.dr / 10
    loss_db = 2 * config.attenuation_db_cm_mhz * (config.frequency_mhz or preset.frequency_mhz) * depth_cm
    ripple = rng.uniform(-1, 1, 8) * config.tgc_ripple_db if config.tgc > 0 else np.zeros(8)
    return -loss_db * (1 - config.tgc) + np.interp(depth_cm, np.linspace(0, depth_cm[-1], 8), ripple)


# --------------------------------------------------------------------------- motion


def _warp(scene: _Scene, t: float, x: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tissue mm -> probe mm at frame t: rotation about the view centre, translation, and a
    periodic elastic displacement (largest mid-depth, zero at the face: breathing/compression)."""
    m, (x0, x1, z0, z1) = scene.motion, scene.probe.bbox
    sway = math.sin(2 * math.pi * t / m.sway_period)
    tx, tz = m.drift_mm[0] * t + m.sway_mm[0] * sway, m.drift_mm[1] * t + m.sway_mm[1] * sway
    phi = math.radians(m.rotation_deg) * math.sin(2 * math.pi * t / m.rotation_period)
    a = m.breathing_mm * math.sin(2 * math.pi * t / m.breathing_period)
    px, pz = x + tx, z + tz
    if a != 0:  # the zero cases are skipped only for speed: there are ~10^5 scatterers
        xn, zn = (x - x0) / (x1 - x0), np.clip((z - z0) / (z1 - z0), 0, 1)
        bend = a * np.sin(np.pi * zn)
        px = px + 0.3 * bend * np.sin(2 * np.pi * xn + scene.deform_phase)
        pz = pz + bend * (1 + 0.3 * np.cos(2 * np.pi * xn + scene.deform_phase))
    if phi != 0:
        cx, cz, c, s = (x0 + x1) / 2, (z0 + z1) / 2, math.cos(phi), math.sin(phi)
        px, pz = cx + c * (x - cx) - s * (z - cz) + (px - x), cz + s * (x - cx) + c * (z - cz) + (pz - z)
    return px, pz


def _unwarp(scene: _Scene, t: float, px: np.ndarray, pz: np.ndarray, iters: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Probe -> tissue by fixed-point iteration: the deformation is smooth and small, so the
    map is a contraction and a few steps reach sub-micron error."""
    x, z = px.copy(), pz.copy()
    for _ in range(iters):
        wx, wz = _warp(scene, t, x, z)
        x, z = x + (px - wx), z + (pz - wz)
    return x, z


# --------------------------------------------------------------------------- acoustics


def _max_displacement(motion: Motion, probe: _Probe, frames: int) -> float:
    """Upper bound (mm) on how far any visible tissue point moves from its frame-0 place."""
    x0, x1, z0, z1 = probe.bbox
    drift = math.hypot(*motion.drift_mm) * (frames - 1)
    turn = math.radians(abs(motion.rotation_deg)) * math.hypot(x1 - x0, z1 - z0) / 2
    return drift + math.hypot(*motion.sway_mm) + turn + 1.4 * abs(motion.breathing_mm) if frames > 1 else 0.0


def _sample_positions(rng: np.random.Generator, probe: _Probe, density_mm2: float,
                      margin: float) -> tuple[np.ndarray, np.ndarray]:
    """Uniform (Poisson) scatterer positions over the view grown by ``margin`` mm (the PSF's
    reach plus the motion): a rectangle, or for a fan an annular sector (its bounding box would
    waste most scatterers)."""
    if probe.geometry is Geometry.LINEAR:
        x0, x1, z0, z1 = probe.bbox
        x0, x1, z0, z1 = x0 - margin, x1 + margin, z0 - margin, z1 + margin
        n = rng.poisson(density_mm2 * (x1 - x0) * (z1 - z0))
        return rng.uniform(x0, x1, n), rng.uniform(z0, z1, n)
    ra, rb = max(probe.r0 - margin, 0.0), probe.r0 + probe.depth_mm + margin
    # A point `margin` beside the fan's edge is furthest off in angle near the apex.
    half = min(probe.half_angle + math.asin(min(1.0, margin / max(probe.r0 - margin, 1e-3))), math.pi)
    n = rng.poisson(density_mm2 * half * (rb ** 2 - ra ** 2))
    r = np.sqrt(rng.uniform(ra ** 2, rb ** 2, n))  # area element r dr dtheta: uniform in r^2
    theta = rng.uniform(-half, half, n)
    return r * np.sin(theta), r * np.cos(theta) - probe.r0


def _psf_sigmas(config: PhantomConfig, probe: _Probe) -> tuple[float, np.ndarray]:
    """PSF sigma along the beam in simulation rows, and across it in lines for every row.
    Config sigmas are image pixels: resolution is constant in mm (dynamic receive focusing), so
    in a fan, whose lines diverge, the lateral sigma in lines shrinks with depth."""
    h, w = probe.shape
    axial = config.psf_axial_sigma_px * probe.spacing / probe.dr
    if probe.geometry is Geometry.LINEAR:
        return axial, np.full(h, config.psf_lateral_sigma_px)
    line_mm = (probe.r0 + (np.arange(h) + 0.5) * probe.dr) * (2 * probe.half_angle / w)
    return axial, config.psf_lateral_sigma_px * probe.spacing / line_mm


def _kernel_spectrum(kernel: np.ndarray, n: int) -> np.ndarray:
    """FFT (length n) of a centred 1-D kernel, its centre at index 0 so nothing shifts."""
    padded = np.zeros(n, dtype=np.complex128)
    padded[:kernel.size] = kernel
    return np.fft.fft(np.roll(padded, -(kernel.size // 2)))


def _axial_pulse(sigma: float, cycles: float) -> tuple[np.ndarray, float]:
    """Unit-energy complex pulse along depth: Gaussian envelope times the analytic carrier
    exp(ikz) with ``cycles`` periods inside its FWHM; returns it and k (rad per row)."""
    r = math.ceil(3 * sigma)
    z = np.arange(-r, r + 1, dtype=np.float64)
    k = 2 * math.pi * cycles / (2 * math.sqrt(2 * math.log(2)) * sigma)
    pulse = np.exp(-0.5 * (z / sigma) ** 2 + 1j * k * z)
    return pulse / np.linalg.norm(pulse), k


def _beam_profile(sigma: float) -> np.ndarray:
    r = math.ceil(3 * sigma)
    x = np.arange(-r, r + 1, dtype=np.float64)
    profile = np.exp(-0.5 * (x / sigma) ** 2)
    return profile / np.linalg.norm(profile)


def _splat(rows: np.ndarray, cols: np.ndarray, amp: np.ndarray, shape: tuple[int, int], k: float) -> np.ndarray:
    """Point scatterers at fractional grid positions -> complex grid. Bilinear in position, and
    each axial tap carries the carrier phase of its offset, so convolving with the carrier PSF
    gives every scatterer the exact echo phase of its true depth (motion-consistent speckle)."""
    h, w = shape
    r0, c0 = np.floor(rows).astype(np.intp), np.floor(cols).astype(np.intp)
    keep = (r0 >= 0) & (r0 < h - 1) & (c0 >= 0) & (c0 < w - 1)
    r0, c0, fr, fc, amp = r0[keep], c0[keep], rows[keep] - r0[keep], cols[keep] - c0[keep], amp[keep]
    ax0 = amp * np.exp(-1j * k * fr)  # tap at r0 sits fr rows above the scatterer
    ax1 = ax0 * (fr * np.exp(1j * k))  # tap at r0 + 1 sits 1 - fr rows below it
    ax0 *= 1 - fr
    grid = np.zeros(h * w, dtype=np.complex128)
    base = r0 * w + c0
    for offset, val in ((0, ax0 * (1 - fc)), (1, ax0 * fc), (w, ax1 * (1 - fc)), (w + 1, ax1 * fc)):
        grid += np.bincount(base + offset, val.real, h * w) + 1j * np.bincount(base + offset, val.imag, h * w)
    return grid.reshape(h, w)


def _envelope(scene: _Scene, t: float) -> np.ndarray:
    """(H, W) speckle envelope |PSF * scatterers| on the simulation grid, E[env^2] = echo^2.

    The PSF is separable (axial pulse x lateral beam profile), applied by FFT. A lateral sigma
    that varies with depth (fan) is done by filtering with a few sigmas and blending adjacent
    ones per row; a blend of jointly Gaussian fields is Gaussian, so speckle stays Rayleigh."""
    probe, (h, w) = scene.probe, scene.probe.shape
    axial_sigma, lateral_sigma = _psf_sigmas(scene.config, probe)
    pulse, k = _axial_pulse(axial_sigma, scene.config.carrier_cycles)
    ra, rl = pulse.size // 2, math.ceil(3 * lateral_sigma.max())
    shape = (cv2.getOptimalDFTSize(h + 2 * ra), cv2.getOptimalDFTSize(w + 2 * rl))
    rows, cols = probe.probe_to_sim(*_warp(scene, t, scene.scat_x, scene.scat_z))
    # Cells widen with depth in a fan; normalise so intensity does not grow with radius.
    amp = scene.scat_amp / np.sqrt(scene.density_mm2 * probe.cell_area(rows))
    spectrum = np.fft.fft2(_splat(rows + ra, cols + rl, amp, shape, k)) * _kernel_spectrum(pulse, shape[0])[:, None]
    # Circular wrap-around lands in the padding, which is cropped.
    lo, hi = float(lateral_sigma.min()), float(lateral_sigma.max())
    levels = np.geomspace(lo, hi, 1 + math.ceil(math.log(hi / lo) / math.log(1.3) - 1e-6))
    fields = np.stack([np.fft.ifft2(spectrum * _kernel_spectrum(_beam_profile(s), shape[1])[None, :])
                       [ra:ra + h, rl:rl + w] for s in levels])
    pos = np.log(lateral_sigma / lo) / math.log(levels[1] / lo) if levels.size > 1 else np.zeros(h)
    i = np.minimum(pos.astype(np.intp), max(levels.size - 2, 0))
    j, f = np.minimum(i + 1, levels.size - 1), (pos - i)[:, None]
    s1, s2 = levels[i][:, None], levels[j][:, None]
    rho = np.sqrt(2 * s1 * s2 / (s1 ** 2 + s2 ** 2))  # correlation of two Gaussian-filtered white fields
    rows = np.arange(h)
    mixed = (1 - f) * fields[i, rows] + f * fields[j, rows]
    return np.abs(mixed) / np.sqrt((1 - f) ** 2 + f ** 2 + 2 * f * (1 - f) * rho)


def _posterior_gain_db(scene: _Scene, coverages: list[np.ndarray]) -> np.ndarray:
    """Extra attenuation (shadow) or its deficit (enhancement) summed along each beam."""
    rate = np.zeros(scene.probe.shape)
    for lesion, cov in zip(scene.lesions, coverages):
        if lesion.posterior is not Posterior.NONE:
            rate += cov * lesion.posterior_db / (2 * lesion.radius)
    return np.cumsum(rate, axis=0) * scene.probe.dr


def _log_compress(amplitude: np.ndarray, config: PhantomConfig) -> np.ndarray:
    """Amplitude -> display level in [0, 255] (float): the top ``dynamic_range_db`` shown."""
    db = 20 * np.log10(np.maximum(amplitude, 1e-12)) + config.gain_db
    return np.clip(db / config.dynamic_range_db + 1.0, 0.0, 1.0) * 255.0


# --------------------------------------------------------------------------- rendering


def _build_scene(config: PhantomConfig, rng: np.random.Generator, motion: Motion, frames: int) -> _Scene:
    preset = ORGANS[config.organ]
    probe = _make_probe(config, preset)
    tgc_db = _depth_gain_db(rng, config, preset, probe)
    lesions = _place_lesions(rng, config, preset, probe)
    # Density per image pixel area, so scatterers per resolution cell match the linear probe.
    density = (config.scatterer_density or preset.scatterer_density) / probe.spacing ** 2
    reach = 3.5 * max(config.psf_axial_sigma_px, config.psf_lateral_sigma_px) * probe.spacing
    x, z = _sample_positions(rng, probe, density, _max_displacement(motion, probe, frames) + reach)
    gauss = (rng.standard_normal(x.size) + 1j * rng.standard_normal(x.size)) / math.sqrt(2)
    structure = _structure_field(rng, (x.min(), x.max(), z.min(), z.max()), preset, config.texture)
    scene = _Scene(config, preset, probe, lesions, structure, tgc_db, motion, float(rng.uniform(0, 2 * np.pi)),
                   density, x, z, gauss)
    scene.scat_amp = gauss * _echogenicity(scene, x, z)[0]
    return scene


def _scan_convert(polar: np.ndarray, maps: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """Simulation grid -> Cartesian (bilinear); outside the fan is exactly 0."""
    out = cv2.remap(polar.astype(np.float32), maps[0], maps[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    out[~maps[2]] = 0
    return out


def _to_display(amplitude: np.ndarray, config: PhantomConfig, probe: _Probe,
                maps: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """Log compression before scan conversion, as scanners interpolate display levels."""
    level = _log_compress(amplitude, config).astype(np.float32)
    return np.rint(level if probe.geometry is Geometry.LINEAR else _scan_convert(level, maps)).astype(np.uint8)


def _lesion_masks(scene: _Scene, t: int, scan_mask: np.ndarray) -> tuple[np.ndarray, list[LesionInfo]]:
    """Index mask evaluated analytically at each Cartesian pixel's tissue point, and lesion info."""
    probe, (h, w) = scene.probe, scene.probe.shape
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    tx, tz = _unwarp(scene, t, *probe.pixel_to_probe(rows, cols))
    mask = np.zeros((h, w), dtype=np.uint8)
    infos = []
    for i, lesion in enumerate(scene.lesions, start=1):
        mask[(lesion.coverage(tx, tz) >= 0.5) & scan_mask] = i
        px, pz = _warp(scene, t, np.array(lesion.center[0]), np.array(lesion.center[1]))
        center = ((float(pz) - probe.z_top) / probe.spacing - 0.5, float(px) / probe.spacing + w / 2 - 0.5)
        infos.append(LesionInfo(i, lesion.kind, lesion.malignant, lesion.posterior, center, lesion.radius))
    return mask, infos


def _render_frame(scene: _Scene, t: int, maps: tuple[np.ndarray, np.ndarray, np.ndarray]) -> PhantomFrame:
    config, probe, (h, w) = scene.config, scene.probe, scene.probe.shape
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    echo, coverages = _echogenicity(scene, *_unwarp(scene, t, *probe.sim_to_probe(rows, cols)))
    gain = 10 ** ((scene.tgc_db[:, None] + _posterior_gain_db(scene, coverages)) / 20)
    env_polar = (_envelope(scene, t) * gain).astype(np.float32)
    # The clean target is the geometric mean of Rayleigh speckle (-2.5 dB from its RMS), the
    # value log-domain despeckling converges to, so it matches the image's local mean level.
    clean_polar = echo * gain * math.exp(-EULER_GAMMA / 2)
    image, clean = (_to_display(a, config, probe, maps) for a in (env_polar, clean_polar))
    envelope = env_polar.copy() if probe.geometry is Geometry.LINEAR else _scan_convert(env_polar, maps)
    mask, infos = _lesion_masks(scene, t, maps[2])
    label = "malignant" if any(i.malignant for i in infos) else "benign" if infos else "normal"
    return PhantomFrame(image, clean, envelope, env_polar, mask, maps[2], infos, label, probe.spacing,
                        config.organ, probe.geometry, probe.depth_mm / 10, t)


def _as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def render(config: PhantomConfig, rng: np.random.Generator | int | None = None) -> PhantomFrame:
    """One static frame of ``config.size``. Same seed, same frame."""
    scene = _build_scene(config, _as_rng(rng), Motion.static(), 1)
    return _render_frame(scene, 0, _scan_conversion_maps(scene.probe))


def render_cine(config: PhantomConfig, n_frames: int, rng: np.random.Generator | int | None = None,
                motion: Motion | None = None) -> list[PhantomFrame]:
    """``n_frames`` frames of one scene under ``motion`` (default: tremor and breathing). The
    scatterers are drawn once and moved, so speckle decorrelates only as much as tissue moves."""
    if n_frames < 1:
        raise ValueError("n_frames must be >= 1")
    scene = _build_scene(config, _as_rng(rng), motion or Motion(), n_frames)
    maps = _scan_conversion_maps(scene.probe)
    return [_render_frame(scene, t, maps) for t in range(n_frames)]


# --------------------------------------------------------------------------- measurements


def envelope_snr(values: np.ndarray) -> float:
    """mean / std of envelope samples; 1.913 for fully developed (Rayleigh) speckle."""
    v = np.asarray(values, dtype=np.float64).ravel()
    return float(v.mean() / v.std())


def autocorrelation_width(envelope_patch: np.ndarray, axis: int = 0) -> float:
    """Full width (pixels) at half maximum of the normalised autocovariance along ``axis``,
    averaged over the other axis: the speckle grain size."""
    p = np.moveaxis(np.asarray(envelope_patch, dtype=np.float64), axis, 0)
    p = p - p.mean()
    n = p.shape[0]
    spec = np.fft.rfft(p, 2 * n, axis=0)  # zero padding: linear, not circular, correlation
    acov = np.fft.irfft(np.abs(spec) ** 2, 2 * n, axis=0)[:n].mean(axis=1)
    acov = acov / acov[0]
    below = np.nonzero(acov < 0.5)[0]
    if below.size == 0:
        return float(2 * n)
    j = int(below[0])
    lag = j - 1 + (acov[j - 1] - 0.5) / (acov[j - 1] - acov[j])  # linear interpolation
    return float(2 * lag)


# --------------------------------------------------------------------------- scanner chrome


def _default_overlay_text(rng: np.random.Generator) -> dict[str, str]:
    when = datetime.datetime(2019, 1, 1) + datetime.timedelta(seconds=int(rng.integers(0, 5 * 365 * 86400)))
    return {"organ": "ABDOMEN", "date": when.strftime("%Y-%m-%d %H:%M:%S"), "mi": f"MI {rng.uniform(0.3, 1.4):.1f}",
            "tis": f"TIs {rng.uniform(0.1, 0.9):.1f}", "gain": f"G {int(rng.integers(30, 70))}",
            "fr": f"FR {int(rng.integers(15, 60))}Hz", "probe": str(rng.choice(["C5-1", "L12-5", "C9-2", "L18-4"]))}


def _draw_ruler(canvas: np.ndarray, x: int, y: int, h: int, depth_cm: float | None, color, font_scale: float) -> None:
    """Vertical depth scale beside the image: a tick per cm with labelled major ticks (or ten
    unlabelled divisions when the depth is unknown)."""
    cv2.line(canvas, (x, y), (x, y + h - 1), color, 1)
    n = int(depth_cm) if depth_cm else 10
    every = 1 if n <= 6 else 2 if n <= 12 else 5
    for i in range(n + 1):
        ty = int(round(y + i * h / (depth_cm or 10)))
        major = i % every == 0
        cv2.line(canvas, (x, ty), (x + (8 if major else 4), ty), color, 1)
        if major and depth_cm:
            cv2.putText(canvas, str(i), (x + 10, ty + 4), cv2.FONT_HERSHEY_SIMPLEX, font_scale, color, 1, cv2.LINE_AA)


def add_ui_chrome(frame: np.ndarray, *, canvas_size: tuple[int, int] = (480, 640),
                  rng: np.random.Generator | int | None = None, text: dict[str, str] | None = None,
                  depth_cm: float | None = None, color: bool = False,
                  scale: float | None = 1.0) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Place a B-mode ``frame`` ((H, W) or (H, W, 3) uint8) in a scanner screen of
    ``canvas_size`` = (Hc, Wc): dark background, logo bar, text overlays, a gray bar and a depth
    ruler. ``scale`` None fits the image to the free area; a number must fit. Returns the
    (Hc, Wc) (or (Hc, Wc, 3) if ``color`` or the frame is RGB) uint8 screen and the image's box
    (x, y, w, h): ``screen[y:y+h, x:x+w]`` is the (scaled) frame exactly."""
    rng = _as_rng(rng)
    hc, wc = canvas_size
    rgb = color or frame.ndim == 3
    canvas = np.full((hc, wc, 3), int(rng.integers(0, 12)), dtype=np.uint8)
    fs = max(0.35, hc / 1000)
    top, left, right, bottom = int(30 * fs / 0.5), int(wc * 0.08) + 10, int(60 * fs / 0.5), int(12 * fs / 0.5)
    area_w, area_h = wc - left - right, hc - top - bottom
    s = min(area_w / frame.shape[1], area_h / frame.shape[0]) if scale is None else scale
    w, h = max(1, int(frame.shape[1] * s)), max(1, int(frame.shape[0] * s))
    if w > area_w or h > area_h:
        raise ValueError(f"frame {frame.shape[:2]} at scale {s} does not fit a {canvas_size} screen; use scale=None")
    image = frame if (w, h) == (frame.shape[1], frame.shape[0]) else cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
    x = left + int(rng.integers(0, area_w - w + 1)) if area_w > w else left
    y = top + int(rng.integers(0, min(area_h - h, 20) + 1))
    ink, accent = ((235, 235, 235), (90, 220, 250)) if rgb else ((235,) * 3, (200,) * 3)
    overlay = {**_default_overlay_text(rng), **(text or {})}
    if depth_cm is not None:
        overlay.setdefault("depth", f"D {depth_cm:g} cm")
    # Logo bar on the left, the grayscale bar under it: both appear on every real screen.
    cv2.rectangle(canvas, (4, 4), (left - 14, top - 6), (70, 70, 70), -1)
    cv2.putText(canvas, "USFM", (8, top - 12), cv2.FONT_HERSHEY_SIMPLEX, fs, ink, 1, cv2.LINE_AA)
    bar_h = max(8, min(h, hc - top - bottom) // 2)
    canvas[top + 10:top + 10 + bar_h, left - 24:left - 14] = np.linspace(255, 0, bar_h, dtype=np.uint8)[:, None, None]
    cv2.putText(canvas, overlay.pop("date"), (wc - int(230 * fs / 0.5), int(20 * fs / 0.5)),
                cv2.FONT_HERSHEY_SIMPLEX, fs, ink, 1, cv2.LINE_AA)
    line_y = top + 10 + bar_h + int(24 * fs / 0.5)
    for key, value in overlay.items():
        if line_y > hc - 4:
            break
        cv2.putText(canvas, str(value), (4, line_y), cv2.FONT_HERSHEY_SIMPLEX, fs * 0.9,
                    accent if key == "organ" else ink, 1, cv2.LINE_AA)
        line_y += int(20 * fs / 0.5)
    _draw_ruler(canvas, min(x + w + 6, wc - 20), y, h, depth_cm, ink, fs * 0.8)
    canvas[y:y + h, x:x + w] = image if image.ndim == 3 else image[..., None]
    return (canvas if rgb else canvas[..., 0].copy()), (x, y, w, h)
