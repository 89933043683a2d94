"""The gateway as a client sees it: status codes, JSON shapes, headers, and what it logs.

End-to-end tests talk to the real tritonserver through a real uvicorn process (fixtures in conftest).
They check structure only, never field values: accuracy is test_end_to_end.py's job. The unit tests
cover the response building and error mapping without a server, plus an in-process gateway whose
Triton address has nothing listening.
"""
from __future__ import annotations

import asyncio
import io
import json
import re
import socket

import httpx
import pytest
from PIL import Image
from tritonclient.utils import InferenceServerException

from fvi.image_io import MAX_BYTES
from fvi.schema import FIELDS, FieldResult, OcrResult
from fvi.synth.dataset import generate
from fvi.triton_launcher import free_port
from gateway.app import create_app
from gateway.config import Settings
from gateway.errors import ApiError, from_triton
from gateway.models import Timing, build_response

TIMEOUT = 120  # two CPU cores shared with whatever else runs


def _encode(image: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt)
    return buf.getvalue()


@pytest.fixture(scope="module")
def card_jpeg() -> bytes:
    return next(iter(generate(count=1, seed=7))).capture.jpeg


def _assert_ocr_body(body: dict) -> None:
    assert set(body) == {"request_id", "status", "card_type", "card_confidence", "corners", "fields", "timing_ms"}
    assert body["status"] == "ok"
    assert 0.0 <= body["card_confidence"] <= 1.0
    assert len(body["corners"]) == 4 and all(len(p) == 2 for p in body["corners"])
    assert list(body["fields"]) == list(FIELDS)
    for f in body["fields"].values():
        assert set(f) == {"value", "confidence"}
        assert isinstance(f["value"], str)
        assert 0.0 <= f["confidence"] <= 1.0
    assert body["timing_ms"]["total"] >= body["timing_ms"]["inference"] > 0


def _assert_error(r: httpx.Response, status: int, code: str | None = None) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error", "request_id"}
    assert body["request_id"] == r.headers["x-request-id"]
    assert body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code
    return body


# ---------------------------------------------------------------- unit: no server


def _result(status: str = "ok", **fields: FieldResult) -> OcrResult:
    corners = [[10.0, 20.0], [300.0, 22.0], [305.0, 210.0], [8.0, 205.0]]
    return OcrResult(status, "cccd_chip_2021" if status == "ok" else None, 0.93, corners, dict(fields), 5)


def test_ok_result_becomes_the_documented_body():
    result = _result(id_number=FieldResult("001234567890", 0.98, ["001234567890"]),
                     full_name=FieldResult("NGUYỄN VĂN A", 0.9, ["NGUYỄN VĂN A"]))
    body = build_response(result.to_json().encode("utf-8"), "rid-1", Timing(inference=12.5, total=14.0))
    d = json.loads(body.model_dump_json())
    _assert_ocr_body(d)
    assert d["request_id"] == "rid-1" and d["card_type"] == "cccd_chip_2021"
    assert d["fields"]["full_name"] == {"value": "NGUYỄN VĂN A", "confidence": 0.9}
    assert d["fields"]["sex"] == {"value": "", "confidence": 0.0}  # absent field filled, not dropped
    assert d["corners"][2] == [305.0, 210.0]


def test_no_card_result_is_422():
    with pytest.raises(ApiError) as e:
        build_response(_result("no_card").to_json(), "rid", Timing(inference=1, total=1))
    assert (e.value.status, e.value.code) == (422, "no_card")


@pytest.mark.parametrize("text", ["", "not json", '{"fields": {}}', '{"status": "weird"}'])
def test_unreadable_result_is_502(text):
    with pytest.raises(ApiError) as e:
        build_response(text, "rid", Timing(inference=1, total=1))
    assert (e.value.status, e.value.code) == (502, "triton_error")


def test_invalid_result_does_not_quote_field_values():
    bad = _result(full_name=FieldResult("NGUYỄN VĂN A", 1.5))  # confidence out of range
    with pytest.raises(ApiError) as e:
        build_response(bad.to_json(), "rid", Timing(inference=1, total=1))
    assert e.value.status == 502 and "NGUY" not in str(e.value) and e.value.__cause__ is None


@pytest.mark.parametrize("message,status,http,code", [
    ("in ensemble 'fvi_ensemble', corrupt_image: the JPEG image could not be decoded", "StatusCode.INTERNAL", 400, "corrupt_image"),
    ("not_an_image: the bytes are not a readable image", "StatusCode.INTERNAL", 400, "not_an_image"),
    ("unsupported_format: GIF images are not accepted", "StatusCode.INTERNAL", 415, "unsupported_format"),
    ("too_many_pixels: the image is 9000x9000", "StatusCode.INTERNAL", 413, "too_many_pixels"),
    ("failed to connect to all addresses", "StatusCode.UNAVAILABLE", 503, "triton_unavailable"),
    ("Deadline Exceeded", "StatusCode.DEADLINE_EXCEEDED", 504, "triton_timeout"),
    ("onnxruntime exploded", "StatusCode.INTERNAL", 502, "triton_error"),
])
def test_triton_errors_map_to_http(message, status, http, code):
    err = from_triton(InferenceServerException(msg=message, status=status), retry_after_s=5)
    assert (err.status, err.code) == (http, code)
    assert ("Retry-After" in err.headers) == (http == 503)


def test_settings_from_env():
    assert Settings.from_env({}) == Settings()
    s = Settings.from_env({"FVI_TRITON_URL": "triton:9001", "FVI_MAX_UPLOAD_BYTES": "1000", "FVI_REQUEST_TIMEOUT_S": "2.5"})
    assert (s.triton_url, s.max_upload_bytes, s.request_timeout_s) == ("triton:9001", 1000, 2.5)
    with pytest.raises(ValueError, match="FVI_MAX_UPLOAD_BYTES"):
        Settings.from_env({"FVI_MAX_UPLOAD_BYTES": "lots"})


def _in_process(app, requests: list[dict]) -> list[httpx.Response]:
    """Run the app's lifespan (which opens the gRPC client) and send requests through ASGI."""
    async def run() -> list[httpx.Response]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway", timeout=30) as client:
                return [await client.request(**r) for r in requests]
    return asyncio.run(run())


def test_unreachable_triton_gives_503_with_retry_after(card_jpeg):
    app = create_app(f"127.0.0.1:{free_port()}")  # nothing listens there
    health, ready, ocr = _in_process(app, [
        {"method": "GET", "url": "/healthz"},
        {"method": "GET", "url": "/readyz"},
        {"method": "POST", "url": "/v1/ocr", "files": {"image": ("card.jpg", card_jpeg, "image/jpeg")}},
    ])
    assert health.status_code == 200
    _assert_error(ready, 503, "triton_unavailable")
    _assert_error(ocr, 503, "triton_unavailable")
    assert int(ready.headers["retry-after"]) > 0 and int(ocr.headers["retry-after"]) > 0


def test_triton_that_never_answers_gives_504():
    """A socket that accepts connections but never speaks gRPC: the per-request deadline must fire."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        app = create_app(f"127.0.0.1:{silent.getsockname()[1]}", request_timeout_s=0.5)
        (ocr,) = _in_process(app, [{"method": "POST", "url": "/v1/ocr", "content": b"\xff\xd8\xff",
                                    "headers": {"content-type": "image/jpeg"}}])
    _assert_error(ocr, 504, "triton_timeout")


def test_upload_limit_is_enforced_while_reading():
    """A chunked body (no Content-Length) is cut off once it passes the cap; Triton is never called."""
    app = create_app(f"127.0.0.1:{free_port()}", max_upload_bytes=1000)

    async def chunks():
        for _ in range(100):
            yield b"\0" * 4096

    declared, small_limit, streamed = _in_process(app, [
        {"method": "POST", "url": "/v1/ocr", "content": b"\0" * 200_000, "headers": {"content-type": "image/jpeg"}},
        {"method": "POST", "url": "/v1/ocr", "content": b"\0" * 5000, "headers": {"content-type": "image/jpeg"}},
        {"method": "POST", "url": "/v1/ocr", "content": chunks(), "headers": {"content-type": "image/jpeg"}},
    ])
    for r in (declared, small_limit, streamed):
        _assert_error(r, 413, "image_too_large")


# ---------------------------------------------------------------- end to end: real Triton, real uvicorn


@pytest.fixture(scope="module")
def http(gateway_url: str):
    with httpx.Client(base_url=gateway_url, timeout=TIMEOUT) as client:
        yield client


@pytest.mark.e2e
def test_health_and_readiness(http):
    assert http.get("/healthz").json() == {"status": "alive"}
    r = http.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ready"}


@pytest.mark.e2e
def test_card_as_multipart_upload(http, card_jpeg):
    r = http.post("/v1/ocr", files={"image": ("card.jpg", card_jpeg, "image/jpeg")},
                  headers={"X-Request-ID": "session-0001"})
    assert r.status_code == 200, r.text
    body = r.json()
    _assert_ocr_body(body)
    assert body["request_id"] == r.headers["x-request-id"] == "session-0001"


@pytest.mark.e2e
def test_card_as_raw_jpeg_body(http, card_jpeg):
    r = http.post("/v1/ocr", content=card_jpeg, headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 200, r.text
    _assert_ocr_body(r.json())


@pytest.mark.e2e
def test_photo_without_a_card_is_422(http):
    grey = _encode(Image.new("RGB", (640, 480), (128, 128, 128)), "JPEG")
    _assert_error(http.post("/v1/ocr", files={"image": ("grey.jpg", grey, "image/jpeg")}), 422, "no_card")


def _gif() -> bytes:
    return _encode(Image.new("RGB", (200, 120), (200, 30, 30)), "GIF")


BAD_UPLOADS = {
    # name: (multipart part (filename, bytes, declared type), expected status, expected code)
    "empty file": (("card.jpg", b"", "image/jpeg"), 400, "empty_image"),
    "random bytes": (("card.jpg", bytes(range(256)) * 64, "image/jpeg"), 400, "not_an_image"),
    "truncated jpeg": (None, 400, "corrupt_image"),
    "gif declared as gif": (("card.gif", None, "image/gif"), 415, "unsupported_media_type"),
    "gif sent as octet-stream": (("card.bin", None, "application/octet-stream"), 415, "unsupported_format"),
    "text file": (("notes.txt", b"name: NGUYEN VAN A", "text/plain"), 415, "unsupported_media_type"),
}


@pytest.mark.e2e
@pytest.mark.parametrize("case", list(BAD_UPLOADS))
def test_bad_uploads_are_refused(http, card_jpeg, case):
    part, status, code = BAD_UPLOADS[case]
    if part is None:
        part = ("card.jpg", card_jpeg[: len(card_jpeg) // 2], "image/jpeg")
    elif part[1] is None:
        part = (part[0], _gif(), part[2])
    _assert_error(http.post("/v1/ocr", files={"image": part}), status, code)


@pytest.mark.e2e
def test_bad_raw_bodies_are_refused(http, card_jpeg):
    _assert_error(http.post("/v1/ocr", content=b"hello", headers={"Content-Type": "text/plain"}), 415,
                  "unsupported_media_type")
    _assert_error(http.post("/v1/ocr", content=card_jpeg), 415, "unsupported_media_type")  # no Content-Type
    _assert_error(http.post("/v1/ocr", content=b"", headers={"Content-Type": "image/jpeg"}), 400, "empty_image")
    _assert_error(http.post("/v1/ocr", files={"photo": ("card.jpg", card_jpeg, "image/jpeg")}), 400, "missing_image")


@pytest.mark.e2e
def test_oversized_upload_is_413(http, card_jpeg):
    just_over = card_jpeg + b"\0" * (MAX_BYTES + 1 - len(card_jpeg))
    _assert_error(http.post("/v1/ocr", content=just_over, headers={"Content-Type": "image/jpeg"}), 413,
                  "image_too_large")
    far_over = card_jpeg + b"\0" * (MAX_BYTES + 2**20)  # refused on its Content-Length, before it is read
    _assert_error(http.post("/v1/ocr", files={"image": ("big.jpg", far_over, "image/jpeg")}), 413, "image_too_large")


@pytest.mark.e2e
def test_unknown_routes_use_the_error_format(http):
    _assert_error(http.get("/v1/nothing"), 404, "not_found")
    _assert_error(http.get("/v1/ocr"), 405, "method_not_allowed")


_LOG_LINE = re.compile(r"request_id=[A-Za-z0-9._-]+ endpoint=\S+ status=\d+ latency_ms=[\d.]+ error=[a-z_-]+$")


@pytest.mark.e2e
def test_log_holds_no_field_values_or_image_bytes(http, gateway_process, card_jpeg):
    """Runs last: every gateway line is the fixed request summary; no value the client sent or got back."""
    r = http.post("/v1/ocr", files={"image": ("card.jpg", card_jpeg, "image/jpeg")})
    values = [f["value"] for f in r.json().get("fields", {}).values()]
    http.post("/v1/ocr", files={"image": ("notes.txt", b"name: NGUYEN VAN A", "text/plain")})
    log = gateway_process.log_text()
    ours = [line for line in log.splitlines() if " gateway " in line]
    assert ours, log[-2000:]
    for line in ours:
        assert _LOG_LINE.search(line), line
    truth = next(iter(generate(count=1, seed=7))).identity.fields().values()
    for secret in [*values, *truth, "NGUYEN VAN A"]:
        assert len(secret) < 3 or secret not in log
