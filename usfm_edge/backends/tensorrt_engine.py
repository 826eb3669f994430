"""Building TensorRT engines on the device (NVIDIA Jetson, or any box with TensorRT).

The bundle carries the ONNX and the exact trtexec command; on first start on the device the
runtime (or ``usfm-edge bundle build-engine``) runs it once and caches the engine under a key
of everything that makes an engine valid: GPU name, compute capability, TensorRT version, the
ONNX's sha256 and the build flags. TensorRT and CUDA are imported only inside the functions,
and the GPU is identified through cuda-python or the system (nvidia-smi, the Jetson's device
tree), never through torch: a cart runs this without it."""

from __future__ import annotations

import hashlib
import json
import shlex
import shutil
import subprocess
from pathlib import Path

from usfm_edge.contracts.manifest import Artifact
from usfm_edge.errors import DependencyError, UsfmEdgeError

TRTEXEC_PATHS = ("trtexec", "/usr/src/tensorrt/bin/trtexec")


def trtexec_command(onnx: str, engine: str, *, precision: str, input_name: str, shape: list[int],
                    max_batch: int = 8, dla_core: int | None = None) -> list[str]:
    """The pinned build command. A Q/DQ (int8) model builds ``--stronglyTyped`` so TensorRT
    keeps exactly the precisions the ONNX states (no layer falls back to fp32 silently);
    fp16 builds with ``--fp16``. DLA (Orin AGX/NX) with GPU fallback when ``dla_core`` is set."""
    c, h, w = shape[1:]
    dims = lambda b: f"{input_name}:{b}x{c}x{h}x{w}"  # noqa: E731
    command = [
        "trtexec", f"--onnx={onnx}", f"--saveEngine={engine}", f"--minShapes={dims(1)}",
        f"--optShapes={dims(1)}", f"--maxShapes={dims(max_batch)}", "--skipInference",
    ]
    command += ["--stronglyTyped"] if precision == "int8" else ["--fp16"] if precision == "fp16" else []
    if dla_core is not None:
        command += [f"--useDLACore={dla_core}", "--allowGPUFallback"]
    return command


def engine_cache_key(*, gpu: str, compute_capability: str, tensorrt: str, onnx_sha256: str, flags: list[str]) -> str:
    payload = json.dumps({"gpu": gpu, "cc": compute_capability, "trt": tensorrt, "onnx": onnx_sha256,
                          "flags": sorted(f for f in flags if not f.startswith(("--onnx=", "--saveEngine=")))})
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def device_identity() -> dict[str, str]:
    """GPU name, compute capability and TensorRT version of this machine."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise DependencyError("TensorRT is not installed here; on a Jetson it comes with JetPack, on a GPU box "
                              "pip install tensorrt") from exc
    try:
        name, major, minor = _gpu_from_cuda()
    except Exception:  # no cuda-python, or no driver answer: ask nvidia-smi / the Jetson's device tree
        name, major, minor = _gpu_from_system()
    return {"gpu": name, "compute_capability": f"{major}.{minor}", "tensorrt": trt.__version__}


def _gpu_from_cuda() -> tuple[str, int, int]:
    """Name and compute capability of CUDA device 0 through cuda-python's runtime API."""
    from usfm_edge.backends.tensorrt import cuda_runtime, cuda_check

    props = cuda_check(cuda_runtime().cudaGetDeviceProperties(0))
    name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else str(props.name)
    return name.strip("\x00 "), int(props.major), int(props.minor)


def _gpu_from_system() -> tuple[str, int, int]:
    smi = shutil.which("nvidia-smi")
    if smi:
        out = subprocess.run([smi, "--query-gpu=name,compute_cap", "--format=csv,noheader"], capture_output=True,
                             text=True, check=True).stdout.strip().splitlines()[0]
        name, cap = (p.strip() for p in out.split(","))
        major, minor = cap.split(".")
        return name, int(major), int(minor)
    model = Path("/proc/device-tree/model")
    if model.is_file():  # Jetson: Orin is 8.7, Xavier 7.2
        text = model.read_text().strip("\x00")
        return text, (8 if "Orin" in text else 7), (7 if "Orin" in text else 2)
    raise UsfmEdgeError("no NVIDIA GPU found (no nvidia-smi, no Jetson device tree)")


def build_engine(bundle: str | Path, artifact: Artifact, *, cache_dir: str | Path) -> Path:
    """Build (once) and return the cached engine for ``artifact`` on this device."""
    bundle, cache_dir = Path(bundle), Path(cache_dir)
    ident = device_identity()
    options = artifact.options
    key = engine_cache_key(gpu=ident["gpu"], compute_capability=ident["compute_capability"],
                           tensorrt=ident["tensorrt"], onnx_sha256=artifact.sha256, flags=options["trtexec"])
    engine = cache_dir / f"{key}.plan"
    if engine.is_file():
        return engine
    trtexec = next((p for p in TRTEXEC_PATHS if shutil.which(p) or Path(p).is_file()), None)
    if trtexec is None:
        raise DependencyError("trtexec not found; on JetPack it is /usr/src/tensorrt/bin/trtexec")
    cache_dir.mkdir(parents=True, exist_ok=True)
    command = [trtexec] + [a.replace("{onnx}", str(bundle / artifact.file)).replace("{engine}", str(engine))
                           for a in options["trtexec"][1:]]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0 or not engine.is_file():
        raise UsfmEdgeError(f"trtexec failed ({result.returncode}): {shlex.join(command)}\n{result.stdout[-2000:]}")
    (cache_dir / f"{key}.json").write_text(json.dumps({**ident, "onnx_sha256": artifact.sha256,
                                                       "command": command}, indent=2))
    return engine
