"""Export a trained PyTorch model to ONNX and prove the file is the same function.

Checks: onnx.checker on the saved file, then onnxruntime vs PyTorch on the same batch
(max absolute difference reported and bounded), at the example's batch size and at batch 1.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort


def export(model, example, path: Path, input_name: str, output_name: str | tuple[str, ...], atol: float = 1e-3,
           dynamic_axes: dict[str, dict[int, str]] | None = None, other_examples: tuple = ()) -> dict:
    """`output_name`: one name, or a tuple for a model returning that many tensors. `dynamic_axes`
    defaults to the batch axis only; `other_examples` (e.g. another width along a dynamic axis) are
    checked against torch too."""
    import torch

    names = [output_name] if isinstance(output_name, str) else list(output_name)

    def torch_outputs(x) -> list[np.ndarray]:
        with torch.no_grad():
            out = model(x)
        return [t.numpy() for t in (out if isinstance(out, (tuple, list)) else (out,))]

    def max_diff(x, want: list[np.ndarray], n: int | None = None) -> float:
        got = sess.run(names, {input_name: x.numpy()})
        return max(float(np.abs(g - w[:n]).max()) for g, w in zip(got, want))

    model.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(model, (example,), str(path), input_names=[input_name], output_names=names,
                          dynamic_axes=dynamic_axes or {n: {0: "batch"} for n in (input_name, *names)}, opset_version=17,
                          dynamo=False)
    expected = torch_outputs(example)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    diff = max_diff(example, expected)
    # the batch axis is dynamic: a single item must give the same answer as inside the batch
    diff = max(diff, max_diff(example[:1], expected, 1))
    for other in other_examples:
        diff = max(diff, max_diff(other, torch_outputs(other)))
    if diff > atol:
        raise AssertionError(f"{path.name}: onnxruntime differs from torch by {diff:.2e} (> {atol})")
    return {"onnx_file": path.name, "max_abs_diff_vs_torch": diff, "opset": 17,
            "size_mb": round(path.stat().st_size / 2**20, 2)}
