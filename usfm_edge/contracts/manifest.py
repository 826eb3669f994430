"""The deployment bundle's ``manifest.json``: the seam between export and the runtime.

Torch-free: the runtime, ``bundle verify`` and the benchmarks read it with the core install.
The runtime trusts nothing but this file, and this file only after three checks:

1. the JSON follows the published schema (``manifest.schema.json`` beside this module);
2. its fields agree with each other (``BundleManifest.check``): the input tensor's shape is
   the preprocessing's channels and input size, the output's channels are the labels (seg,
   cls) or the image channels (enhance), mean and std are finite with std > 0;
3. every file an artifact loads, and the golden pair, exists inside the bundle folder and has
   the recorded sha256 (``BundleManifest.verify_files``).

Schema version 2 (this one) hashes every loaded file (OpenVINO's ``.bin``, external ONNX data,
the golden pair) and records how the gate prepared its frames. Version 1 bundles are refused
with a message that says to re-export: their weights files were not hashed and their gate did
not crop frames as the runtime does, so their recorded accuracy may not be what runs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from usfm_edge.contracts.enums import ArtifactFormat, Backend, Precision, Target, Task
from usfm_edge.contracts.model_dir import Preprocess
from usfm_edge.errors import IntegrityError, SchemaError
from usfm_edge.fileio import read_json, sha256_file, write_text_atomic

MANIFEST = "manifest.json"
SCHEMA_FILE = Path(__file__).with_name("manifest.schema.json")
BUNDLE_SCHEMA = "usfm-edge/bundle"
BUNDLE_SCHEMA_VERSION = 2
REEXPORT = "re-export the bundle with 'usfm-edge export'"


@dataclass(frozen=True)
class FileRef:
    """A file of the bundle: its path relative to the bundle folder and its sha256."""

    path: str
    sha256: str

    @classmethod
    def of(cls, bundle: Path, path: str | Path) -> FileRef:
        """The reference to ``bundle / path`` as it is on disk now."""
        return cls(PurePosixPath(Path(path)).as_posix(), sha256_file(bundle / path))


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int | str, ...]  # a string names a dynamic dimension ("batch")
    dtype: str = "float32"


@dataclass(frozen=True)
class IoSpec:
    input: TensorSpec
    output: TensorSpec
    layout: str = "NCHW"


@dataclass
class Artifact:
    """One runnable model file of the bundle, with every other file it loads."""

    format: ArtifactFormat
    precision: Precision
    target: Target
    backend: Backend  # what runs it when deployed
    file: str
    sha256: str
    files: list[FileRef] = field(default_factory=list)  # OpenVINO .bin, external ONNX data, ...
    built_with: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def refs(self) -> list[FileRef]:
        return [FileRef(self.file, self.sha256), *self.files]

    @property
    def for_tensorrt(self) -> bool:
        """Exported for TensorRT: carries the pinned trtexec build command."""
        return "trtexec" in self.options


@dataclass
class Validation:
    """What the export gate measured: the artifact against its fp32 source on the same frames,
    prepared by ``usfm_edge.contracts.prepare`` exactly as the runtime prepares them."""

    metric: str | None = None
    frames: int = 0
    source: float | None = None
    max_drop: float | None = None
    prepare: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    parity: dict[str, dict[str, float]] = field(default_factory=dict)
    source_per_case: list[float] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    attempts: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Calibration:
    count: int = 0
    sha256: str | None = None
    source: str | None = None


@dataclass
class Golden:
    """A preprocessed frame and the fp32 source model's output for it."""

    input: FileRef
    output: FileRef


@dataclass
class BundleManifest:
    task: Task
    labels: list[str]
    preprocess: Preprocess
    io: IoSpec
    artifacts: list[Artifact]
    golden: Golden
    validation: Validation = field(default_factory=Validation)
    calibration: Calibration = field(default_factory=Calibration)
    source: dict[str, Any] = field(default_factory=dict)
    usfm_edge_version: str = ""
    created: str = ""

    def __post_init__(self) -> None:
        self.check()

    # ------------------------------------------------------------------ consistency

    def check(self) -> None:
        """The fields agree with each other; ``SchemaError`` naming the first that does not."""
        spec = self.preprocess
        shape = self.io.input.shape
        if len(shape) != 4 or list(shape[1:]) != [spec.channels, *spec.input_size]:
            raise SchemaError(f"io.input.shape {list(shape)} does not match preprocess (channels {spec.channels}, "
                              f"input_size {list(spec.input_size)}); {REEXPORT}")
        out = self.io.output.shape
        if self.task in (Task.SEGMENTATION, Task.CLASSIFICATION):
            if len(self.labels) < 2:
                raise SchemaError(f"a {self.task} bundle needs at least 2 labels, has {self.labels}")
            rank = 4 if self.task is Task.SEGMENTATION else 2
            if len(out) != rank or out[1] != len(self.labels):
                raise SchemaError(f"io.output.shape {list(out)} does not fit a {self.task} model with "
                                  f"{len(self.labels)} labels {self.labels}; {REEXPORT}")
        elif self.task is Task.ENHANCEMENT and (len(out) != 4 or out[1] != spec.channels):
            raise SchemaError(f"io.output.shape {list(out)} is not a {spec.channels}-channel image; {REEXPORT}")
        runs = [(a.file, str(a.backend)) for a in self.artifacts]
        if len(set(runs)) != len(runs):
            raise SchemaError(f"artifacts list a file for the same backend twice: {runs}")
        if not any(a.format is ArtifactFormat.ONNX and a.precision is Precision.FP32 for a in self.artifacts):
            raise SchemaError(f"no fp32 ONNX artifact (the portable fallback every bundle carries); {REEXPORT}")
        for ref in self.files():
            _check_relative(ref.path)

    # ------------------------------------------------------------------ files

    def files(self) -> list[FileRef]:
        """Every file the bundle loads: each artifact's files and the golden pair."""
        refs = [ref for artifact in self.artifacts for ref in artifact.refs]
        return refs + [self.golden.input, self.golden.output]

    def verify_files(self, bundle: str | Path, refs: list[FileRef] | None = None) -> None:
        """Each file (default: all of them) is a regular file inside ``bundle`` with its
        recorded sha256; ``IntegrityError`` naming the first that is not."""
        bundle = Path(bundle)
        root = bundle.resolve()
        for ref in self.files() if refs is None else refs:
            path = bundle / ref.path
            if not path.resolve().is_relative_to(root):
                raise IntegrityError(f"{path}: resolves outside the bundle folder (a link?); {REEXPORT}")
            if not path.is_file():
                raise IntegrityError(f"{path}: listed in the manifest but missing; {REEXPORT}")
            try:
                digest = sha256_file(path)
            except OSError as exc:
                raise IntegrityError(f"{path}: cannot be read ({exc.strerror}); check its permissions") from None
            if digest != ref.sha256:
                raise IntegrityError(f"{path}: sha256 differs from the manifest (changed or corrupted); {REEXPORT}")

    def artifact(self, *, backend: str | None = None, precision: str | None = None) -> Artifact:
        """The first artifact matching the wishes; ``model.onnx`` (fp32) is always there."""
        for artifact in self.artifacts:
            if backend and artifact.backend != backend or precision and artifact.precision != precision:
                continue
            return artifact
        have = ", ".join(f"{a.backend}/{a.precision}" for a in self.artifacts)
        raise SchemaError(f"no artifact for backend={backend} precision={precision} in this bundle; it has {have}")

    # ------------------------------------------------------------------ JSON

    def to_dict(self) -> dict[str, Any]:
        body = _jsonable(dataclasses.asdict(self))
        body["preprocess"] = self.preprocess.to_dict()
        return {"schema": BUNDLE_SCHEMA, "schema_version": BUNDLE_SCHEMA_VERSION, **body}

    @classmethod
    def from_dict(cls, data: Any, *, source: str = MANIFEST) -> BundleManifest:
        validate(data, source)
        try:
            return cls(
                task=Task(data["task"]), labels=list(data["labels"]),
                preprocess=Preprocess.from_dict(data["preprocess"]),
                io=IoSpec(**{k: TensorSpec(**{**v, "shape": tuple(v["shape"])}) if k != "layout" else v
                             for k, v in data["io"].items()}),
                artifacts=[_artifact(a) for a in data["artifacts"]],
                golden=Golden(FileRef(**data["golden"]["input"]), FileRef(**data["golden"]["output"])),
                validation=Validation(**data["validation"]), calibration=Calibration(**data["calibration"]),
                source=dict(data.get("source") or {}), usfm_edge_version=data["usfm_edge_version"],
                created=data.get("created", ""),
            )
        except SchemaError as exc:
            raise SchemaError(f"{source}: {exc}") from None
        except (TypeError, ValueError) as exc:  # the schema lets through what the dataclasses refuse
            raise SchemaError(f"{source}: {exc}; {REEXPORT}") from None

    @classmethod
    def read(cls, bundle: str | Path) -> BundleManifest:
        path = Path(bundle) / MANIFEST
        if Path(bundle).is_file():
            raise SchemaError(f"{bundle}: is a file; a bundle is the folder 'usfm-edge export --out' wrote")
        data = read_json(path, missing="missing; a bundle is a folder written by 'usfm-edge export'")
        return cls.from_dict(data, source=str(path))

    def write(self, bundle: str | Path) -> Path:
        data = self.to_dict()
        validate(data)
        return write_text_atomic(Path(bundle) / MANIFEST, json.dumps(data, indent=2) + "\n")


def read_verified(bundle: str | Path) -> BundleManifest:
    """The manifest of ``bundle`` after all three checks (module docstring)."""
    manifest = BundleManifest.read(bundle)
    manifest.verify_files(bundle)
    return manifest


def validate(manifest: Any, source: str = MANIFEST) -> None:
    """Raise ``SchemaError`` naming the first violation of the published schema."""
    import jsonschema

    if not isinstance(manifest, dict):
        raise SchemaError(f"{source}: a manifest is a JSON object, not {type(manifest).__name__}; {REEXPORT}")
    if manifest.get("schema") != BUNDLE_SCHEMA:
        raise SchemaError(f"{source}: not a usfm-edge bundle manifest (schema {manifest.get('schema')!r})")
    version = manifest.get("schema_version")
    if version != BUNDLE_SCHEMA_VERSION:
        raise SchemaError(f"{source}: bundle schema_version {version} is not read by this usfm-edge (it reads "
                          f"{BUNDLE_SCHEMA_VERSION}); {REEXPORT}" + (" with this version" if version == 1 else ""))
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))
    errors = sorted(validator.iter_errors(manifest), key=lambda e: list(e.path))
    if errors:
        where = "/".join(map(str, errors[0].path)) or "(top level)"
        raise SchemaError(f"{source}: {where}: {errors[0].message}; the bundle does not follow the manifest schema")


def _artifact(data: dict[str, Any]) -> Artifact:
    return Artifact(format=ArtifactFormat(data["format"]), precision=Precision(data["precision"]),
                    target=Target(data["target"]), backend=Backend(data["backend"]), file=data["file"],
                    sha256=data["sha256"], files=[FileRef(**f) for f in data.get("files", [])],
                    built_with=dict(data.get("built_with") or {}), options=dict(data.get("options") or {}))


def _check_relative(path: str) -> None:
    """Artifact paths are plain relative paths that stay inside the bundle."""
    parts = PurePosixPath(path).parts
    if not parts or PurePosixPath(path).is_absolute() or ".." in parts or "\\" in path or os.path.isabs(path):
        raise SchemaError(f"file {path!r} leaves the bundle folder; bundle paths are relative, without '..'")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN; a metric that could not be computed is null
    if hasattr(value, "value") and isinstance(value, str):  # str enums
        return value.value
    return value
