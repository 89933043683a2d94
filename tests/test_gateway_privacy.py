"""No card data in any log line, at any log level, and none written to disk by the serving path.

A gateway process of its own runs at the most verbose settings (FVI_LOG_LEVEL=DEBUG, uvicorn
--log-level trace) in an empty working directory with its own empty TMPDIR and HOME, in front of the
session's tritonserver (which runs with --log-verbose=1 and logs to its own file). Cards with known
field values go through every route (single, raw, batch, debug, bad inputs); then every byte both
servers logged is searched for the values (as sent, ASCII-folded, JSON-escaped), the image bytes, their
hex and base64, and the base64 of the annotated debug image. The directories must still be empty, and
the gateway must hold no file open there (nor any deleted temporary file) while it serves.

What this cannot see: Triton's Python-backend stubs exchange tensors through shared memory (/dev/shm),
which is memory, not disk; Triton itself writes only its log.
"""
from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from client.annotate import ascii_fold
from fvi.synth.dataset import generate
from gateway.process import GatewayProcess, start_gateway, stop_gateway

pytestmark = pytest.mark.e2e

PRIVACY_SEED = 4600  # not a training, test or bench seed
_LOG_LINE = re.compile(r"request_id=[A-Za-z0-9._-]+ endpoint=\S+ status=(\d+|-) latency_ms=[\d.]+ error=[a-z_-]+$")


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("privacy")
    dirs = {name: root / name for name in ("cwd", "tmp", "home")}
    for d in dirs.values():
        d.mkdir()
    return {**dirs, "log": root / "gateway.log"}


@pytest.fixture(scope="module")
def verbose_gateway(triton, sandbox) -> Iterator[GatewayProcess]:
    g = start_gateway(triton.grpc_url, sandbox["log"], cwd=sandbox["cwd"], uvicorn_log_level="trace",
                      FVI_LOG_LEVEL="DEBUG", TMPDIR=str(sandbox["tmp"]), HOME=str(sandbox["home"]),
                      PYTHONDONTWRITEBYTECODE="1")
    try:
        yield g
    finally:
        stop_gateway(g)


def _open_files(pid: int) -> list[str]:
    out = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            out.append(os.readlink(fd))
        except OSError:
            pass
    return out


def _listing(*dirs: Path) -> list[str]:
    return sorted(str(p) for d in dirs for p in d.rglob("*"))


def _secrets_of(values: list[str]) -> set[str]:
    """Each value as sent, ASCII-folded (a careless log might strip accents) and JSON-escaped (a JSON log)."""
    out = set()
    for v in values:
        for form in (v, ascii_fold(v), json.dumps(v)[1:-1]):
            if len(form) >= 6 and not (form.isdigit() and len(form) < 8):  # "Nam", "2026": ordinary text
                out.add(form)
    return out


def _image_traces(data: bytes) -> set[bytes]:
    """Byte strings that would show an image was logged: raw windows, hex, Python repr, base64 windows."""
    traces = set()
    middle = len(data) // 2 // 3 * 3  # base64 of a 3-aligned window is a substring of the whole's base64
    for start in (0, middle):
        window = data[start:start + 48]
        traces |= {window, window.hex().encode(), repr(window)[2:-1].encode(), base64.b64encode(window)}
    traces.add(base64.b64encode(data)[:64])
    return traces


def test_logs_hold_no_card_data_and_nothing_is_written(verbose_gateway, sandbox, triton_log):
    samples = list(generate(count=3, seed=PRIVACY_SEED))
    before = _listing(sandbox["cwd"], sandbox["tmp"], sandbox["home"])
    values: list[str] = []
    images: list[bytes] = []
    held: list[str] = []
    with httpx.Client(base_url=verbose_gateway.url, timeout=120) as http:
        statuses = []
        for s in samples:
            jpeg = s.capture.jpeg
            big = jpeg + b"\0" * (2 * 2**20)  # past Starlette's 1 MB spool threshold (still a valid JPEG)
            images.append(jpeg)
            values += s.identity.fields().values()
            for r in (http.post("/v1/ocr", files={"image": ("card.jpg", jpeg, "image/jpeg")}),
                      http.post("/v1/ocr", params={"debug": "1"}, content=big, headers={"Content-Type": "image/jpeg"}),
                      http.post("/v1/ocr/batch", params={"debug": "1"},
                                files=[("images", ("a.jpg", big, "image/jpeg")), ("images", ("b.jpg", jpeg, "image/jpeg"))])):
                statuses.append(r.status_code)
                held += _open_files(verbose_gateway.process.pid)
                body = r.json()
                cards = [i["result"] for i in body.get("items", []) if i["result"]] or [body]
                for card in cards:
                    values += [f["value"] for f in card.get("fields", {}).values()]
                    if card.get("annotated_image"):
                        images.append(base64.b64decode(card["annotated_image"]["data_base64"]))
        # refused inputs that carry personal data themselves
        name = samples[0].identity.fields()["full_name"]
        http.post("/v1/ocr", files={"image": ("notes.txt", f"name: {name}".encode(), "text/plain")})
        http.post("/v1/ocr", content=f"{name}".encode(), headers={"Content-Type": "image/jpeg"})
        http.post("/v1/ocr", content=jpeg[: len(jpeg) // 2], headers={"Content-Type": "image/jpeg"})
        http.get("/metrics")
    assert 200 in statuses, f"no card was read ({statuses}): the test would prove little"
    after = _listing(sandbox["cwd"], sandbox["tmp"], sandbox["home"])
    stop_gateway(verbose_gateway)  # flushes its log

    assert after == before == [], "the gateway wrote files in its working directory, TMPDIR or HOME"
    sandboxed = [f for f in held if f.startswith(tuple(str(sandbox[k]) for k in ("cwd", "tmp", "home")))]
    deleted = [f for f in held if f.endswith("(deleted)") and not f.startswith(("/memfd:", "/dev/shm/"))]
    assert not sandboxed and not deleted, held

    gateway_log = sandbox["log"].read_bytes()
    logs = {"gateway": gateway_log, "tritonserver": triton_log.read_bytes()}
    assert b"ASGI [" in gateway_log and b" DEBUG gateway " in gateway_log, "the gateway did not log at trace/DEBUG level"
    secrets = _secrets_of([v for v in values if v])
    traces = set().union(*(_image_traces(i) for i in images))
    for source, log in logs.items():
        for secret in secrets:
            assert secret.encode("utf-8") not in log, f"{source} log holds a field value"
        for trace in traces:
            assert trace not in log, f"{source} log holds image bytes"
    ours = [line for line in gateway_log.decode("utf-8", "replace").splitlines() if " gateway " in line]
    assert ours
    for line in ours:
        assert _LOG_LINE.search(line), line
