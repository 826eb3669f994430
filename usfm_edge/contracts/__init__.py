"""The contracts layer: what train, export, runtime and the benchmarks agree on. Torch-free.

- ``enums``: Task, Precision, Target, Backend, ArtifactFormat.
- ``model_dir``: the model directory's ``config.json`` (``ModelConfig``, ``Preprocess``).
- ``manifest``: the deployment bundle's ``manifest.json`` (``BundleManifest``), its JSON schema
  and the integrity checks of every file a bundle loads.
- ``region``: where the B-mode image and its imaging sector are in a captured screen.
- ``prepare``: the one prepare path, captured frame -> network input and network output ->
  the frame's own grid (imports OpenCV, so it is not re-exported here).

Every stage imports these and nothing of each other: train, export and runtime never import
one another (``tests/test_import_layers.py`` checks it, lazy imports included).
"""

from usfm_edge.contracts.enums import EXPORT_TARGETS, ArtifactFormat, Backend, Precision, Target, Task
from usfm_edge.contracts.model_dir import (
    CONFIG_FILE, GRAY_MEAN, GRAY_STD, IMAGENET_MEAN, IMAGENET_STD, MODEL_DIR_SCHEMA, MODEL_DIR_SCHEMA_VERSION,
    WEIGHTS_FILE, Crop, HeadSpec, Intensity, ModelConfig, Preprocess, Resize,
)

__all__ = [
    "CONFIG_FILE", "EXPORT_TARGETS", "GRAY_MEAN", "GRAY_STD", "IMAGENET_MEAN", "IMAGENET_STD", "MODEL_DIR_SCHEMA",
    "MODEL_DIR_SCHEMA_VERSION", "WEIGHTS_FILE", "ArtifactFormat", "Backend", "Crop", "HeadSpec", "Intensity",
    "ModelConfig", "Precision", "Preprocess", "Resize", "Target", "Task",
]
