"""What this machine can run: versions, backends, devices, and how to fix what is missing.

Torch-free until the ``torch`` check, which imports it only if installed. Every check returns
a ``Finding``; none raises.
"""

from __future__ import annotations

import enum
import glob
import importlib
import importlib.metadata as md
import os
import platform
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from usfm_edge._version import __version__
from usfm_edge.offline import import_quietly

TRAIN_HINT = "pip install -c constraints.txt -e '.[train]'"
CORE_HINT = "pip install -e .  (core runtime dependencies)"
OPENCV_DISTS = ("opencv-python", "opencv-python-headless", "opencv-contrib-python", "opencv-contrib-python-headless")


class Status(str, enum.Enum):
    OK = "ok"
    MISSING = "missing"
    WARN = "warn"
    INFO = "info"


@dataclass
class Finding:
    section: str
    name: str
    status: Status
    detail: str
    hint: str = ""
    required: bool = False  # the runtime cannot work without it


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def _module_check(section: str, module: str, dist: str, hint: str, *, required: bool = False) -> Finding:
    try:
        importlib.import_module(module)
    except Exception as exc:  # a broken install raises more than ImportError
        return Finding(section, dist, Status.MISSING, f"not importable ({type(exc).__name__})", hint, required)
    return Finding(section, dist, Status.OK, _version(dist) or "installed", required=required)


def check_python() -> list[Finding]:
    py = platform.python_version()
    ok = sys.version_info >= (3, 10)
    return [
        Finding("system", "usfm-edge", Status.INFO, __version__),
        Finding("system", "python", Status.OK if ok else Status.MISSING, py, "" if ok else "use Python >= 3.10", True),
        Finding("system", "platform", Status.INFO, f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs"),
    ]


def check_core() -> list[Finding]:
    section = "core"
    found = [
        _module_check(section, "numpy", "numpy", CORE_HINT, required=True),
        _module_check(section, "click", "click", CORE_HINT, required=True),
        _module_check(section, "rich", "rich", CORE_HINT, required=True),
        _module_check(section, "yaml", "pyyaml", CORE_HINT, required=True),
        _module_check(section, "pydicom", "pydicom", CORE_HINT, required=True),
    ]
    plugins = {"pylibjpeg": "pylibjpeg", "openjpeg": "pylibjpeg-openjpeg", "rle": "pylibjpeg-rle", "PIL": "pillow"}
    have = [dist for module, dist in plugins.items() if importlib.util.find_spec(module)]
    missing = [dist for dist in plugins.values() if dist not in have]
    gdcm = importlib.util.find_spec("gdcm") is not None
    found.append(Finding(
        section, "DICOM decoders", Status.OK if not missing else Status.WARN,
        ", ".join(have + (["python-gdcm"] if gdcm else [])) or "none",
        f"pip install {' '.join(missing)}  (compressed DICOM: JPEG, JPEG 2000, RLE)" if missing else "",
    ))
    return found


def check_opencv() -> list[Finding]:
    try:
        cv2 = importlib.import_module("cv2")
    except Exception as exc:
        return [Finding("opencv", "OpenCV", Status.MISSING, f"not importable ({type(exc).__name__})",
                        "pip install opencv-python-headless, or use the system OpenCV (JetPack)", True)]
    dists = [d for d in OPENCV_DISTS if _version(d)]
    build = ", ".join(f"{d} {_version(d)}" for d in dists) if dists else "system build (not from pip)"
    info = opencv_build_info(cv2.getBuildInformation())
    findings = [Finding("opencv", "OpenCV", Status.OK, f"{cv2.__version__} from {build}", required=True)]
    if len(dists) > 1:
        findings.append(Finding("opencv", "OpenCV wheels", Status.WARN, f"several installed: {', '.join(dists)}",
                                "keep one: they overwrite each other's cv2 package"))
    findings.append(Finding(
        "opencv", "GUI (windows on a cart screen)", Status.OK if info["gui"] else Status.INFO,
        info["gui_detail"], "" if info["gui"] else
        "headless build: overlays are recorded or streamed; for windows install opencv-python (not -headless) "
        "or the system OpenCV",
    ))
    findings.append(Finding(
        "opencv", "GStreamer (gst: sources, Jetson capture)", Status.OK if info["gstreamer"] else Status.INFO,
        "yes" if info["gstreamer"] else "no",
        "" if info["gstreamer"] else "pip wheels have no GStreamer; JetPack's OpenCV has it "
        "(see requirements/jetson-runtime.txt)",
    ))
    findings.append(Finding("opencv", "V4L2 / FFMPEG video I/O", Status.INFO,
                            f"V4L2 {'yes' if info['v4l2'] else 'no'}, FFMPEG {'yes' if info['ffmpeg'] else 'no'}"))
    return findings


def opencv_build_info(text: str) -> dict:
    """Parse the parts of ``cv2.getBuildInformation()`` that matter to capture and display."""

    def flag(name: str) -> bool:
        m = re.search(rf"^\s*{name}:\s*(\S+)", text, flags=re.MULTILINE)
        return bool(m) and m.group(1).upper().startswith("YES")

    gui = re.search(r"^\s*GUI:\s*(.*)$", text, flags=re.MULTILINE)
    gui_detail = gui.group(1).strip() if gui else "NONE"
    return {
        "gstreamer": flag("GStreamer"),
        "v4l2": flag("v4l/v4l2") or flag("V4L2") or flag("v4l"),
        "ffmpeg": flag("FFMPEG"),
        "gui": bool(gui) and gui_detail.upper() not in ("", "NONE", "NO"),
        "gui_detail": gui_detail or "NONE",
    }


def check_onnxruntime() -> list[Finding]:
    try:
        ort = import_quietly("onnxruntime")
    except Exception as exc:
        return [Finding("backends", "ONNX Runtime", Status.MISSING, f"not importable ({type(exc).__name__})",
                        "pip install onnxruntime (onnxruntime-gpu on CUDA boxes)", True)]
    providers = ort.get_available_providers()
    return [Finding("backends", "ONNX Runtime", Status.OK, f"{ort.__version__}; providers: {', '.join(providers)}",
                    required=True)]


def check_openvino() -> list[Finding]:
    try:
        ov = import_quietly("openvino")
        devices = ov.Core().available_devices
    except Exception as exc:
        return [Finding("backends", "OpenVINO", Status.MISSING, f"not usable ({type(exc).__name__}: {exc})",
                        "pip install openvino")]
    return [Finding("backends", "OpenVINO", Status.OK, f"{ov.__version__}; devices: {', '.join(devices)}")]


def check_tensorrt() -> list[Finding]:
    found = []
    try:
        trt = importlib.import_module("tensorrt")
        found.append(Finding("backends", "TensorRT", Status.OK, trt.__version__))
    except Exception as exc:
        found.append(Finding(
            "backends", "TensorRT", Status.INFO, f"not available ({type(exc).__name__})",
            "Jetson: comes with JetPack; GPU box: pip install tensorrt (fetches NVIDIA's wheel). "
            "Without it, export --target jetson still writes the bundle and build step",
        ))
    trtexec = shutil.which("trtexec") or next(iter(glob.glob("/usr/src/tensorrt/bin/trtexec")), None)
    found.append(Finding("backends", "trtexec", Status.OK if trtexec else Status.INFO, trtexec or "not found",
                         "" if trtexec else "on Jetson: /usr/src/tensorrt/bin/trtexec"))
    return found


def check_training() -> list[Finding]:
    section = "training"
    try:
        torch = importlib.import_module("torch")
    except Exception as exc:
        return [Finding(section, "torch", Status.MISSING, f"not importable ({type(exc).__name__})", TRAIN_HINT)]
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        cuda = f"CUDA {torch.version.cuda}: {', '.join(names)}; bf16 {'yes' if torch.cuda.is_bf16_supported() else 'no'}"
    else:
        cuda = "no CUDA device (CPU build or no GPU)"
    found = [
        Finding(section, "torch", Status.OK, torch.__version__),
        Finding(section, "accelerator", Status.INFO, cuda),
    ]
    try:
        from usfm_edge._compat import torchvision as tv_compat

        timm = tv_compat.import_timm()
        note = "; torchvision CUDA build on CPU torch: ops shim active" if tv_compat.shim_active else ""
        found.append(Finding(section, "timm", Status.OK, timm.__version__ + note))
    except Exception as exc:
        found.append(Finding(section, "timm", Status.MISSING, f"not importable ({exc})", TRAIN_HINT))
    found.append(_module_check(section, "safetensors", "safetensors", TRAIN_HINT))
    found.append(_module_check(section, "onnx", "onnx", TRAIN_HINT))
    try:
        import_quietly("nncf")
        found.append(Finding(section, "nncf", Status.OK, _version("nncf") or "installed"))
    except Exception as exc:
        found.append(Finding(section, "nncf", Status.MISSING, f"not importable ({type(exc).__name__})", TRAIN_HINT))
    return found


def check_capture() -> list[Finding]:
    if platform.system() != "Linux":
        return [Finding("capture", "video devices", Status.INFO, "listing is implemented for Linux (V4L2)")]
    nodes = sorted(glob.glob("/dev/video*"))
    if not nodes:
        return [Finding("capture", "video devices", Status.INFO, "none found (/dev/video*)",
                        "connect a capture card or probe; or use file, DICOM or phantom: sources")]
    found = []
    for node in nodes:
        name_file = Path("/sys/class/video4linux") / Path(node).name / "name"
        name = name_file.read_text().strip() if name_file.is_file() else "unknown"
        access = "readable" if os.access(node, os.R_OK) else "no read permission (add the user to group 'video')"
        found.append(Finding("capture", node, Status.OK if os.access(node, os.R_OK) else Status.WARN,
                             f"{name}; {access}"))
    return found


CHECKS: tuple[Callable[[], list[Finding]], ...] = (
    check_python, check_core, check_opencv, check_onnxruntime, check_openvino, check_tensorrt,
    check_training, check_capture,
)


def run_checks() -> list[Finding]:
    findings: list[Finding] = []
    for check in CHECKS:
        findings.extend(check())
    return findings


def as_json(findings: list[Finding]) -> list[dict]:
    return [{**asdict(f), "status": f.status.value} for f in findings]


def runtime_ready(findings: list[Finding]) -> bool:
    return not any(f.required and f.status is Status.MISSING for f in findings)
