"""A team migrating a TF Serving reader: SavedModel in, checked ONNX out, served by onnxruntime.

TensorFlow lives in its own virtualenv (`make setup-convert`, part of `make test`), so the model is
built and converted there and the result is checked here, in the serving environment.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

ROOT = Path(__file__).resolve().parent.parent
TF_PYTHON = ROOT / ".venv-tf" / "bin" / "python"

pytestmark = pytest.mark.skipif(not TF_PYTHON.exists(), reason="no TensorFlow environment: run `make setup-convert`")


def _tf(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(TF_PYTHON), *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_savedmodel_converts_to_an_equivalent_onnx_file(tmp_path):
    built = _tf("tests/tf_savedmodel.py", str(tmp_path))
    assert built.returncode == 0, built.stderr[-2000:]
    out = tmp_path / "reader.onnx"
    run = _tf("-m", "converters.tf_to_onnx", str(tmp_path / "saved_model"), str(out))
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(run.stdout)
    assert report["inputs"] == ["line"] and report["outputs"] == ["char_probs"]
    assert report["max_abs_diff_vs_tensorflow"] < 1e-4

    expected = np.load(tmp_path / "expected.npz")
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = sess.run(["char_probs"], {"line": expected["line"]})[0]
    assert got.shape == (3, 32, 211)
    np.testing.assert_allclose(got, expected["char_probs"], atol=1e-5)


def test_a_folder_that_is_not_a_savedmodel_is_refused(tmp_path):
    run = _tf("-m", "converters.tf_to_onnx", str(tmp_path), str(tmp_path / "x.onnx"))
    assert run.returncode != 0 and "not a SavedModel folder" in run.stderr
    assert not (tmp_path / "x.onnx").exists()
