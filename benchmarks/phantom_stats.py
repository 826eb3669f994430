"""The phantom's physics figures quoted in the README, measured: envelope SNR in homogeneous
tissue against Rayleigh's 1.913, speckle grain (autocorrelation FWHM) against the PSF's
(2.355 sigma), benign vs malignant outline solidity, render time, and how well
``speckle_match`` recovers a known PSF.

    python -m benchmarks.phantom_stats --out benchmarks/results
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from benchmarks.machine import describe
from benchmarks.store import store
from usfm_edge.data.phantom import (
    RAYLEIGH_SNR, Geometry, LesionKind, PhantomConfig, autocorrelation_width, envelope_snr, render,
)
from usfm_edge.data.speckle_match import match_psf

HOMOGENEOUS = PhantomConfig(size=(192, 192), organ="thyroid", geometry=Geometry.LINEAR, n_lesions=(0, 0),
                            texture=False, attenuation_db_cm_mhz=0.0, tgc=0.0)
PSFS = [(1.5, 2.5), (1.5, 6.0), (3.0, 3.0)]


def speckle(seeds: range) -> list[dict]:
    rows = []
    for axial, lateral in PSFS:
        config = dataclasses.replace(HOMOGENEOUS, psf_axial_sigma_px=axial, psf_lateral_sigma_px=lateral)
        envelopes = [render(config, s).envelope_polar[16:-16, 16:-16] for s in seeds]
        rows.append({
            "psf_sigma_px": [axial, lateral],
            "snr": round(float(np.mean([envelope_snr(e) for e in envelopes])), 3),
            "grain_fwhm_px": [round(float(np.mean([autocorrelation_width(e, axis=a) for e in envelopes])), 2)
                              for a in (0, 1)],
            "psf_fwhm_px": [round(2.355 * axial, 2), round(2.355 * lateral, 2)],
        })
    return rows


def solidity(mask: np.ndarray) -> float:
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    c = max(contours, key=cv2.contourArea)
    return cv2.contourArea(c) / cv2.contourArea(cv2.convexHull(c))


def outlines(seeds: range) -> dict:
    def lesion(malignant: bool) -> PhantomConfig:
        return PhantomConfig(size=(128, 128), organ="thyroid", geometry=Geometry.LINEAR, n_lesions=(1, 1),
                             p_malignant=float(malignant), lesion_kind=LesionKind.HYPOECHOIC, texture=False)

    values = {name: [solidity(render(lesion(m), s).mask > 0) for s in seeds]
              for name, m in (("benign", False), ("malignant", True))}
    return {k: [round(min(v), 3), round(max(v), 3)] for k, v in values.items()}


def render_ms(repeats: int) -> dict:
    out = {}
    for organ in ("liver", "thyroid"):
        times = []
        for s in range(repeats):
            start = time.perf_counter()
            render(PhantomConfig(size=(256, 256), organ=organ), s)
            times.append((time.perf_counter() - start) * 1e3)
        out[organ] = round(statistics.median(times), 1)
    return out


def psf_recovery() -> dict:
    truth = PhantomConfig(size=(192, 192), organ="breast", psf_axial_sigma_px=2.0, psf_lateral_sigma_px=3.5,
                          n_lesions=(0, 0))
    matched, _ = match_psf([render(truth, s).image for s in range(2)], PhantomConfig(size=(192, 192), organ="breast"))
    return {"truth_sigma_px": [2.0, 3.5],
            "recovered_sigma_px": [round(matched.psf_axial_sigma_px, 3), round(matched.psf_lateral_sigma_px, 3)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    seeds = range(args.seeds)
    result = {"benchmark": "phantom_stats", "date": dt.date.today().isoformat(), "machine": describe(),
              "rayleigh_snr": RAYLEIGH_SNR, "speckle": speckle(seeds), "solidity_min_max": outlines(seeds),
              "render_ms_256": render_ms(max(3, args.seeds)), "psf_recovery": psf_recovery()}
    lines = [f"Phantom statistics ({result['date']}, {args.seeds} seeds, envelope before log compression)", "",
             "| PSF sigma (px) | envelope SNR (Rayleigh 1.913) | grain FWHM (px) | PSF FWHM (px) |", "|---|---:|---|---|"]
    lines += [f"| {r['psf_sigma_px']} | {r['snr']} | {r['grain_fwhm_px']} | {r['psf_fwhm_px']} |"
              for r in result["speckle"]]
    lines += ["", f"Solidity min/max: {result['solidity_min_max']}; render ms (256x256): {result['render_ms_256']}; "
              f"PSF recovery: {result['psf_recovery']}"]
    store(args.out / "phantom_stats", result, lines)


if __name__ == "__main__":
    main()
