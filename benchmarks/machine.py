"""Describe the machine a benchmark ran on: CPU model, cores, library versions."""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
from pathlib import Path

LIBRARIES = ("torch", "timm", "onnxruntime", "openvino", "nncf", "numpy", "opencv-python-headless")


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


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
        "platform": f"{platform.system()} {platform.release()} {platform.machine()}",
        "python": platform.python_version(),
        "libraries": versions,
    }
