"""Task models export to ONNX and run in ONNX Runtime with the same numbers (the export
stage builds on this)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from usfm_edge.models import build_task_model, make_config


@pytest.mark.parametrize("arch, args", [
    ("usfm_vit_t16", {"depth": 2}),
    ("usfm_vit_t16", {"depth": 2, "fused_attn": False}),
    ("timm:resnet10t", {}),
])
def test_seg_model_exports_with_parity(tmp_path, arch, args):
    import onnxruntime as ort

    config = make_config(arch, "seg", labels=["background", "lesion"], img_size=32, in_chans=1, model_args=args)
    model = build_task_model(config).eval()
    x = torch.randn(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    path = tmp_path / "model.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), dynamo=True, external_data=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        ref = model(x).numpy()
    assert out.shape == ref.shape == (1, 2, 32, 32)
    np.testing.assert_allclose(out, ref, atol=1e-4, rtol=1e-4)
