"""Export a trained PyTorch model to ONNX and prove the file is the same function.

Checks: onnx.checker on the saved file, then onnxruntime vs PyTorch on the same batch
(max absolute difference reported and bounded), at the example's batch size and at batch 1.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort


def export(model, example, path: Path, input_name: str, output_name: str, atol: float = 1e-3,
           dynamic_axes: dict[str, dict[int, str]] | None = None, other_examples: tuple = ()) -> dict:
    """`dynamic_axes` defaults to the batch axis only; `other_examples` (e.g. another width along a
    dynamic axis) are checked against torch too."""
    import torch

    model.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(model, (example,), str(path), input_names=[input_name], output_names=[output_name],
                          dynamic_axes=dynamic_axes or {input_name: {0: "batch"}, output_name: {0: "batch"}}, opset_version=17,
                          dynamo=False)
        expected = model(example).numpy()
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run([output_name], {input_name: example.numpy()})[0]
    diff = float(np.abs(got - expected).max())
    # the batch axis is dynamic: a single item must give the same answer as inside the batch
    single = sess.run([output_name], {input_name: example[:1].numpy()})[0]
    diff = max(diff, float(np.abs(single - expected[:1]).max()))
    for other in other_examples:
        with torch.no_grad():
            want = model(other).numpy()
        diff = max(diff, float(np.abs(sess.run([output_name], {input_name: other.numpy()})[0] - want).max()))
    if diff > atol:
        raise AssertionError(f"{path.name}: onnxruntime differs from torch by {diff:.2e} (> {atol})")
    return {"onnx_file": path.name, "max_abs_diff_vs_torch": diff, "opset": 17,
            "size_mb": round(path.stat().st_size / 2**20, 2)}
