"""Triton Python-backend adapters. Each model.py in model_repository/ is one import of a class here.

They only move tensors in and out; the work is the shared `fvi.pipeline` stages, so the ensemble and
the in-process reference cannot drift. `triton_python_backend_utils` exists only inside Triton's stub,
hence the import inside `initialize`.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fvi import pipeline
from fvi.image_io import ImageError
from fvi.schema import ERROR_DETECTOR_UNAVAILABLE, ERROR_READER_UNAVAILABLE


_ORT_DTYPES = {"tensor(float)": np.float32, "tensor(uint8)": np.uint8}


def _pb():
    import triton_python_backend_utils as pb_utils

    return pb_utils


class ModelCallFailed(RuntimeError):
    pass


def _image_bytes(tensor: np.ndarray) -> bytes:
    return bytes(tensor.reshape(-1)[0])


class _Base:
    def initialize(self, args: dict) -> None:
        self.pb = _pb()
        pipeline.single_threaded_opencv()
        self.config = json.loads(args["model_config"])
        self.model_dir = Path(args["model_repository"]) / args["model_version"]

    def param(self, key: str, default: str) -> str:
        return self.config.get("parameters", {}).get(key, {}).get("string_value", default)

    def inp(self, request, name: str) -> np.ndarray:
        return self.pb.get_input_tensor_by_name(request, name).as_numpy()

    def out(self, **tensors: np.ndarray):
        return self.pb.InferenceResponse(output_tensors=[self.pb.Tensor(k, v) for k, v in tensors.items()])

    def error(self, message: str):
        return self.pb.InferenceResponse(output_tensors=[], error=self.pb.TritonError(message))

    def call(self, model: str, input_name: str, array: np.ndarray, output_name: str) -> np.ndarray:
        """A BLS call from this step to a network of the repository (raises ModelCallFailed)."""
        req = self.pb.InferenceRequest(model_name=model, requested_output_names=[output_name],
                                       inputs=[self.pb.Tensor(input_name, array)])
        resp = req.exec()
        if resp.has_error():
            raise ModelCallFailed(resp.error().message())
        return self.pb.get_output_tensor_by_name(resp, output_name).as_numpy()

    def execute(self, requests):
        return [self.handle(r) for r in requests]

    def handle(self, request):
        raise NotImplementedError


class OnnxModel(_Base):
    """A network run by onnxruntime; requests gathered by Triton's dynamic batcher run as one batch per input shape
    (the detector's photos come in several shapes, the reader's crops in several widths)."""

    def initialize(self, args: dict) -> None:
        super().initialize(args)
        self.session = pipeline.onnx_session(self.model_dir / "model.onnx", int(self.param("intra_op_threads", "1")))
        self.input_name = self.config["input"][0]["name"]
        self.output_names = [o["name"] for o in self.config["output"]]
        # warm-up: onnxruntime allocates and picks kernels on the first run; do it before serving
        inp = self.session.get_inputs()[0]
        shape = [d if isinstance(d, int) else (1 if i == 0 else 64) for i, d in enumerate(inp.shape)]
        self.session.run(self.output_names, {self.input_name: np.zeros(shape, _ORT_DTYPES[inp.type])})

    def execute(self, requests):
        arrays = [self.inp(r, self.input_name) for r in requests]
        responses = [None] * len(requests)
        by_shape: dict[tuple, list[int]] = {}
        for i, a in enumerate(arrays):
            by_shape.setdefault(a.shape[1:], []).append(i)
        for members in by_shape.values():
            parts = [arrays[i] for i in members]
            batch = parts[0] if len(parts) == 1 else np.concatenate(parts)  # alone: no copy of the pixels
            results = self.session.run(self.output_names, {self.input_name: batch})
            bounds = np.cumsum([len(p) for p in parts])[:-1]
            split = [np.split(r, bounds) for r in results]
            for j, i in enumerate(members):
                responses[i] = self.out(**{name: s[j] for name, s in zip(self.output_names, split)})
        return responses


class DecodeModel(_Base):
    def handle(self, request):
        try:
            d = pipeline.stage_decode(_image_bytes(self.inp(request, "IMAGE")))
        except ImageError as e:
            return self.error(f"{e.code}: {e}")
        return self.out(DETECTOR_INPUT=d.detector_input, TO_PHOTO=d.to_photo)


class LineCropsModel(_Base):
    """The detector's second look (the text turned level and zoomed) is a BLS call from here to the detector
    model named by detector_model, so the photo is decoded at working size once, in this step."""

    def initialize(self, args: dict) -> None:
        super().initialize(args)
        self.detector_model = self.param("detector_model", "detector")

    def run_detector(self, image: np.ndarray) -> np.ndarray:
        return self.call(self.detector_model, "image", image, "prob")

    def handle(self, request):
        try:
            lines = pipeline.stage_line_crops(_image_bytes(self.inp(request, "IMAGE")), self.inp(request, "DETECTOR_PROB")[0],
                                              self.inp(request, "TO_PHOTO"), self.run_detector)
        except ImageError as e:  # decode accepted these bytes, so only a decoder disagreement lands here
            return self.error(f"{e.code}: {e}")
        except ModelCallFailed as e:
            return self.error(f"{ERROR_DETECTOR_UNAVAILABLE}: the detector's second look failed ({e}); retry, or check the server")
        return self.out(READER_INPUT=lines.crops, LINE_META=lines.meta)


class CropperModel(_Base):
    """A page read with too few labels is read again turned over: a BLS call to the reader model named by
    reader_model, so only such pages pay for it."""

    def initialize(self, args: dict) -> None:
        super().initialize(args)
        self.reader_model = self.param("reader_model", "reader")

    def run_reader(self, crops: np.ndarray) -> np.ndarray:
        return self.call(self.reader_model, "line", crops, "ctc_best")

    def handle(self, request):
        try:
            card = pipeline.stage_cropper(_image_bytes(self.inp(request, "IMAGE")), self.inp(request, "CTC_BEST"),
                                          self.inp(request, "LINE_META"), self.run_reader)
        except ImageError as e:
            return self.error(f"{e.code}: {e}")
        except ModelCallFailed as e:
            return self.error(f"{ERROR_READER_UNAVAILABLE}: reading the page turned over failed ({e}); retry, or check the server")
        return self.out(CTC_UPRIGHT=card.ctc_best, LINE_META_UPRIGHT=card.meta, CORNERS=card.corners,
                        CARD_CONFIDENCE=card.confidence, CARD_FOUND=card.found, QUALITY=card.quality)


class AssembleModel(_Base):
    def handle(self, request):
        result = pipeline.stage_assemble(self.inp(request, "CTC_BEST"), self.inp(request, "LINE_META"),
                                         self.inp(request, "CORNERS"), float(self.inp(request, "CARD_CONFIDENCE")[0]),
                                         bool(self.inp(request, "CARD_FOUND")[0]), self.inp(request, "QUALITY"))
        return self.out(RESULT=np.array([result.to_json().encode("utf-8")], dtype=object))
