"""Embedded-Triton runner for detector/1/model.onnx (the pytriton server has no onnxruntime backend)."""
from fvi.triton_models import OnnxModel as TritonPythonModel  # noqa: F401
