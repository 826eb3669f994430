"""TensorRT: runs the engine built on this device from a ``jetson`` (or ``tensorrt``)
bundle artifact. The first start builds it with the bundle's pinned trtexec command and
caches it (``usfm_edge.backends.tensorrt_engine.build_engine``); later starts load the cached
engine.

TensorRT 10 API with CUDA through cuda-python (``pip install cuda-python``; JetPack 6 ships
both), so the runtime stays free of torch. TensorRT and CUDA are imported inside ``load``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from usfm_edge.backends.base import InferenceBackend, Session, register_backend
from usfm_edge.contracts import Backend
from usfm_edge.contracts.manifest import Artifact, BundleManifest
from usfm_edge.errors import DependencyError, UsfmEdgeError


def cuda_runtime():
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python
        except ImportError as exc:
            raise DependencyError("the TensorRT backend needs cuda-python: pip install cuda-python") from exc
    return cudart


def cuda_check(result):
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise UsfmEdgeError(f"CUDA call failed: {err}")
    return rest[0] if len(rest) == 1 else rest


class TrtSession(Session):
    """One engine, one execution context, one CUDA stream; device buffers grow to the
    largest batch seen."""

    def __init__(self, engine_path: Path, precision: str) -> None:
        import tensorrt as trt

        self.cudart, self.precision = cuda_runtime(), precision
        logger = trt.Logger(trt.Logger.WARNING)
        self.engine = trt.Runtime(logger).deserialize_cuda_engine(Path(engine_path).read_bytes())
        if self.engine is None:
            raise UsfmEdgeError(f"{engine_path}: TensorRT cannot load this engine (built by another TensorRT "
                                "version or GPU); delete it from the cache to rebuild")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.input = next(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
        self.output = next(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT)
        self.stream = cuda_check(self.cudart.cudaStreamCreate())
        self._buffers: dict[str, tuple[int, int]] = {}  # name -> (device pointer, bytes)

    def _buffer(self, name: str, nbytes: int) -> int:
        pointer, size = self._buffers.get(name, (0, 0))
        if size < nbytes:
            if pointer:
                cuda_check(self.cudart.cudaFree(pointer))
            pointer = cuda_check(self.cudart.cudaMalloc(nbytes))
            self._buffers[name] = (pointer, nbytes)
            self.context.set_tensor_address(name, pointer)
        return pointer

    def run(self, x: np.ndarray) -> np.ndarray:
        cudart = self.cudart
        x = np.ascontiguousarray(x, dtype=np.float32)
        self.context.set_input_shape(self.input, x.shape)
        out = np.empty(tuple(self.context.get_tensor_shape(self.output)), dtype=np.float32)
        d_in, d_out = self._buffer(self.input, x.nbytes), self._buffer(self.output, out.nbytes)
        cuda_check(cudart.cudaMemcpyAsync(d_in, x.ctypes.data, x.nbytes,
                                      cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, self.stream))
        if not self.context.execute_async_v3(self.stream):
            raise UsfmEdgeError("TensorRT execution failed")
        cuda_check(cudart.cudaMemcpyAsync(out.ctypes.data, d_out, out.nbytes,
                                      cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost, self.stream))
        cuda_check(cudart.cudaStreamSynchronize(self.stream))
        return out

    def __del__(self) -> None:
        for pointer, _ in getattr(self, "_buffers", {}).values():
            self.cudart.cudaFree(pointer)


@register_backend
class TensorRtBackend(InferenceBackend):
    name = Backend.TENSORRT
    module = "tensorrt"
    formats = ("onnx",)
    devices = ("GPU", "CUDA", "DLA")

    @classmethod
    def can_run(cls, artifact: Artifact) -> bool:
        return artifact.for_tensorrt  # only artifacts exported for TensorRT carry the build

    @classmethod
    def load(cls, path: str | Path, *, precision: str = "fp32", threads: int | None = None,
             device: str = "GPU") -> Session:
        """``path`` is a serialized engine (.plan/.engine)."""
        return TrtSession(Path(path), str(precision))

    @classmethod
    def load_artifact(cls, bundle: Path, manifest: BundleManifest, artifact: Artifact, *,
                      threads: int | None = None, device: str = "GPU", cache_dir: Path | None = None) -> Session:
        from usfm_edge.backends.tensorrt_engine import build_engine

        cls.check_device(device if str(device).upper() != "CPU" else "GPU")
        # The same default as `usfm-edge bundle build-engine`, so a prebuilt engine is found.
        engine = build_engine(bundle, artifact, cache_dir=cache_dir or bundle / "engines")
        return cls.load(engine, precision=artifact.precision)
