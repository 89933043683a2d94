"""Triton Python-backend step: thin adapter over fvi.pipeline (see fvi/triton_models.py)."""
from fvi.triton_models import WarpModel as TritonPythonModel  # noqa: F401
