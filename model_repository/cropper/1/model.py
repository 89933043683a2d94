"""The cropper step: the card's corners from the printed labels the reader read (fvi.pipeline.stage_cropper)."""
from fvi.triton_models import CropperModel as TritonPythonModel  # noqa: F401
