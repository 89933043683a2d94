"""TensorFlow SavedModel → ONNX with tf2onnx, checked against TensorFlow on the same input.

For teams migrating FVI-style TF Serving models onto this repository: the ONNX file this writes
can replace models/<net>.onnx once its inputs and outputs match the net's config. Runs in the
TensorFlow environment (`make setup-convert` → .venv-tf), which is kept apart from the serving one
because TensorFlow and tritonclient pin different protobuf versions.

    .venv-tf/bin/python -m converters.tf_to_onnx SAVED_MODEL_DIR OUT.onnx [--opset 17]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np


def _signature(saved_model: Path, name: str):
    import tensorflow as tf

    loaded = tf.saved_model.load(str(saved_model))
    if name not in loaded.signatures:
        raise SystemExit(f"{saved_model}: no signature {name!r}; it has {sorted(loaded.signatures)}")
    return loaded, loaded.signatures[name]


def example_inputs(signature, batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random inputs of the signature's shapes (unknown dimensions: `batch` for the first, 32 otherwise)."""
    _, specs = signature.structured_input_signature
    feeds = {}
    for name, spec in specs.items():
        shape = [(batch if i == 0 else 32) if d is None else d for i, d in enumerate(spec.shape.as_list())]
        dtype = spec.dtype.as_numpy_dtype
        feeds[name] = (rng.random(shape) * (255 if dtype == np.uint8 else 1)).astype(dtype)
    return feeds


def convert(saved_model: Path, out: Path, opset: int = 17, signature: str = "serving_default",
            atol: float = 1e-4) -> dict:
    """Convert, run onnx.checker, then compare onnxruntime with TensorFlow at batch 1 and 4."""
    import onnx
    import onnxruntime as ort

    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "tf2onnx.convert", "--saved-model", str(saved_model), "--output", str(out),
           "--opset", str(opset), "--signature_def", signature]
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0 or not out.exists():
        tail = "\n".join(run.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"tf2onnx failed on {saved_model} (exit {run.returncode}):\n{tail}")
    onnx.checker.check_model(onnx.load(str(out)), full_check=True)

    _loaded, fn = _signature(saved_model, signature)  # _loaded keeps the variables alive
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    onnx_inputs = [i.name for i in sess.get_inputs()]
    onnx_outputs = [o.name for o in sess.get_outputs()]
    rng = np.random.default_rng(0)
    diff = 0.0
    for batch in (1, 4):
        feeds = example_inputs(fn, batch, rng)
        expected = {k: v.numpy() for k, v in fn(**feeds).items()}
        # tf2onnx names the graph's inputs and outputs after the signature's keys
        got = sess.run(onnx_outputs, {name: feeds[name] for name in onnx_inputs})
        for name, value in zip(onnx_outputs, got):
            want = expected[name]
            if value.shape != want.shape:
                raise AssertionError(f"{name}: onnxruntime shape {value.shape} != TensorFlow {want.shape}")
            diff = max(diff, float(np.abs(value.astype(np.float64) - want).max()))
    if diff > atol:
        raise AssertionError(f"{out.name}: onnxruntime differs from TensorFlow by {diff:.2e} (> {atol})")
    return {"onnx_file": str(out), "opset": opset, "inputs": onnx_inputs, "outputs": onnx_outputs,
            "max_abs_diff_vs_tensorflow": diff, "size_mb": round(out.stat().st_size / 2**20, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("saved_model", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument("--signature", default="serving_default")
    a = ap.parse_args()
    if not (a.saved_model / "saved_model.pb").exists():
        raise SystemExit(f"{a.saved_model} is not a SavedModel folder (no saved_model.pb)")
    print(json.dumps(convert(a.saved_model, a.out, a.opset, a.signature), indent=2))


if __name__ == "__main__":
    main()
