"""models/detector.onnx from PP-OCRv4's DB text detector as `rapidocr_onnxruntime` 1.4.4 ships it (Apache-2.0).

The shipped graph takes float pixels normalised to [-1, 1]; the served one takes uint8 (N, 3, H, W) RGB, as every
net of the repository does, and normalises inside (x / 127.5 - 1), so a quarter of the bytes cross into it. The
output `prob` (N, 1, H, W) is the probability that each pixel lies in a text line (fvi.text_detector decodes it).
Checked against the shipped graph on a real-sized input before it is written.

    .venv/bin/python -m converters.db_detector            # needs: pip install --no-deps rapidocr_onnxruntime==1.4.4
"""
from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, compose, helper

from fvi import MODELS_DIR

SOURCE_PACKAGE = "rapidocr_onnxruntime"
SOURCE_FILE = "models/ch_PP-OCRv4_det_infer.onnx"
INPUT, OUTPUT = "image", "prob"


def shipped_model() -> Path:
    """The file inside the installed package, found without importing it (its __init__ needs packages we do not)."""
    spec = importlib.util.find_spec(SOURCE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{SOURCE_PACKAGE} is not installed: pip install --no-deps {SOURCE_PACKAGE}==1.4.4")
    return Path(list(spec.submodule_search_locations)[0]) / SOURCE_FILE


def wrap(model: onnx.ModelProto) -> onnx.ModelProto:
    """uint8 pixels in, the shipped graph's normalisation inside, named input and output."""
    src_in, src_out = model.graph.input[0].name, model.graph.output[0].name
    pre = helper.make_graph(
        [helper.make_node("Cast", [INPUT], ["pixels_f"], to=TensorProto.FLOAT),
         helper.make_node("Mul", ["pixels_f", "inv_half"], ["pixels_s"]),
         helper.make_node("Sub", ["pixels_s", "one"], ["normalised"])],
        "uint8_to_db",
        [helper.make_tensor_value_info(INPUT, TensorProto.UINT8, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info("normalised", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor("inv_half", TensorProto.FLOAT, [], [1 / 127.5]), helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])])
    pre_model = helper.make_model(pre, opset_imports=list(model.opset_import), ir_version=model.ir_version)
    merged = compose.merge_models(pre_model, model, io_map=[("normalised", src_in)])
    post = helper.make_graph([helper.make_node("Identity", [src_out], [OUTPUT])], "name_output",
                             [helper.make_tensor_value_info(src_out, TensorProto.FLOAT, ["batch", 1, "height", "width"])],
                             [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", 1, "height", "width"])])
    post_model = helper.make_model(post, opset_imports=list(model.opset_import), ir_version=model.ir_version)
    out = compose.merge_models(merged, post_model, io_map=[(src_out, src_out)])
    out.producer_name = "fvi converters.db_detector"
    onnx.checker.check_model(out)
    return out


def check(wrapped: Path, shipped: Path) -> float:
    """Largest difference between the wrapped graph on uint8 pixels and the shipped one on the same, normalised."""
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (1, 3, 320, 448), dtype=np.uint8)
    a = ort.InferenceSession(str(wrapped), providers=["CPUExecutionProvider"]).run([OUTPUT], {INPUT: pixels})[0]
    s = ort.InferenceSession(str(shipped), providers=["CPUExecutionProvider"])
    b = s.run(None, {s.get_inputs()[0].name: pixels.astype(np.float32) / 127.5 - 1.0})[0]
    return float(np.abs(a - b).max())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=MODELS_DIR / "detector.onnx")
    a = ap.parse_args()
    src = shipped_model()
    onnx.save(wrap(onnx.load(str(src))), str(a.out))
    diff = check(a.out, src)
    if diff > 1e-5:
        raise SystemExit(f"the wrapped detector differs from the shipped one by {diff:g}")
    print(f"{a.out}: PP-OCRv4 DB from {SOURCE_PACKAGE}/{SOURCE_FILE}, uint8 input; largest difference {diff:.2g}")


if __name__ == "__main__":
    main()
