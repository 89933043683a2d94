"""FVI shared core: one implementation of the schema, charset, geometry and pre/post-processing.

Imported by the Triton Python-backend models, the in-process reference pipeline, the training
code and the tests, so that the served ensemble and the reference can never drift apart.
"""
import os
from pathlib import Path

# The committed ONNX models (FVI_MODELS: another set): what the reference pipeline runs, what `make engines`
# installs, what the launcher checks the repository against and whose model cards the evaluation reads.
MODELS_DIR = Path(os.environ.get("FVI_MODELS", Path(__file__).resolve().parent.parent / "models"))
