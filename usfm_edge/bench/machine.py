"""The machine a benchmark ran on: CPU model, cores, the instruction sets that decide which
int8/bf16 kernels run, the GPU if any, and the versions of the libraries that did the work.

Torch-free (``torch`` is listed by version from its metadata, not imported)."""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
import shutil
import subprocess
from pathlib import Path

from usfm_edge.runtime.pipeline import usable_cores

LIBRARIES = ("usfm-edge", "torch", "timm", "onnxruntime", "openvino", "nncf", "tensorrt", "numpy",
             "opencv-python-headless")
# CPU flags that select kernels: AVX-512 VNNI / AVX-VNNI for int8, AVX512_BF16 / AMX for bf16.
FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_vp2intersect", "amx_bf16", "amx_int8",
         "avx512_fp16", "asimddp")


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith(("model name", "Model")):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        return []
    for line in cpuinfo.read_text().splitlines():
        if line.startswith(("flags", "Features")):
            present = set(line.split(":", 1)[1].split())
            return [f for f in FLAGS if f in present]
    return []


def gpu() -> str | None:
    """The first NVIDIA GPU's name and driver, from nvidia-smi; None without one."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run([smi, "--query-gpu=name,driver_version", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20, check=True).stdout.strip().splitlines()
    except (OSError, subprocess.SubprocessError):
        return None
    return out[0] if out else None


def describe() -> dict:
    versions = {}
    for lib in LIBRARIES:
        try:
            versions[lib] = md.version(lib)
        except md.PackageNotFoundError:
            continue
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "cpu_flags": cpu_flags(),
        "gpu": gpu(),
        # other processes' load when the run started: the machine may be shared
        "load_average_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "platform": f"{platform.system()} {platform.release()} {platform.machine()}",
        "python": platform.python_version(),
        "libraries": versions,
    }
