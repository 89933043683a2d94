"""The command-line client as a user runs it: a subprocess against the real tritonserver.

Field values are asserted by the end-to-end tests; here the contract is: one valid JSON line per
image, an annotated image of the input's size, exit code 2 with a clear message when the server
cannot be reached or refuses an image.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from fvi.schema import OcrResult
from fvi.synth.dataset import generate
from fvi.triton_launcher import REPO_ROOT, free_port

CLIENT_SEED = 4300  # not a training seed


def run_client(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "client.fvi_client", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def card_jpg(tmp_path: Path) -> Path:
    sample = next(generate(1, seed=CLIENT_SEED))
    path = tmp_path / f"{sample.name}.jpg"
    path.write_bytes(sample.capture.jpeg)
    return path


@pytest.mark.e2e
def test_client_prints_json_and_writes_annotated_image(triton, card_jpg: Path, tmp_path: Path):
    out_dir = tmp_path / "annotated"
    p = run_client(str(card_jpg), "--url", triton.grpc_url, "--annotate", str(out_dir))
    assert p.returncode == 0, p.stderr
    lines = [line for line in p.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, p.stdout
    record = json.loads(lines[0])
    assert record["path"] == str(card_jpg)
    result = OcrResult.from_json(json.dumps(record["result"]))  # parses as the documented schema
    assert result.status in ("ok", "no_card")
    annotated = out_dir / f"{card_jpg.stem}.annotated.jpg"
    assert record["annotated"] == str(annotated)
    drawn, original = cv2.imread(str(annotated)), cv2.imread(str(card_jpg))
    assert drawn is not None, "annotated file is not a readable image"
    assert drawn.shape == original.shape


@pytest.mark.e2e
def test_client_reports_a_rejected_image_with_exit_code_2(triton, card_jpg: Path):
    bad = card_jpg.parent / "not_a_photo.png"
    bad.write_bytes(b"this is not an image")
    p = run_client(str(card_jpg.parent), "--url", triton.grpc_url)  # the good card and the bad file
    assert p.returncode == 2
    assert "not_a_photo.png" in p.stderr and "not_an_image" in p.stderr
    records = {Path(r["path"]).name: r for r in map(json.loads, p.stdout.splitlines())}
    assert "result" in records[card_jpg.name]  # the other image is still read
    assert records["not_a_photo.png"]["error"]["code"] == "not_an_image"


def test_client_unreachable_server_exits_2_with_a_clear_message(card_jpg: Path):
    url = f"127.0.0.1:{free_port()}"  # nothing listens there
    p = run_client(str(card_jpg), "--url", url, "--timeout", "5", timeout=60)
    assert p.returncode == 2
    assert f"cannot reach Triton at {url}" in p.stderr
    assert p.stdout == ""
