"""Fixtures the runtime's test modules share (import them by name into a test module)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def runtime_bundle(model_and_data, tmp_path_factory):
    """An ONNX Runtime fp32 bundle of the session's tiny fine-tuned segmentation model (64 px),
    exported without a gate: these tests exercise the runtime, not the model."""
    from usfm_edge.export.exporter import export_bundle

    model_dir, _ = model_and_data
    return export_bundle(model_dir, target="onnxruntime", precision="fp32", out=tmp_path_factory.mktemp("rb") / "b")


@pytest.fixture(scope="session")
def screen_bundle(screen_model_and_data, tmp_path_factory):
    """An ONNX Runtime fp32 bundle of the session's model fine-tuned on whole scanner screens
    (128 px breast phantom in 240x320 UI): it finds the phantom's lesions, so masks compared
    between environments are not empty."""
    from usfm_edge.export.exporter import export_bundle

    model_dir, _ = screen_model_and_data
    return export_bundle(model_dir, target="onnxruntime", precision="fp32", out=tmp_path_factory.mktemp("sb") / "b")
