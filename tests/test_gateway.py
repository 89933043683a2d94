"""The gateway as a client sees it: status codes, JSON shapes, headers, metrics.

End-to-end tests talk to the real tritonserver through a real uvicorn process (fixtures in conftest).
They check structure only, never field values: accuracy is test_end_to_end.py's job. The unit tests
cover response building, error mapping and the Triton client's limits without a server, plus an
in-process gateway whose Triton address has nothing listening (or a socket that never answers).
Privacy, restarts and load, and the schema fuzz test have their own test_gateway_*.py files.
"""
from __future__ import annotations

import asyncio
import base64
import io
import json
import socket
import struct
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families
from tritonclient.utils import InferenceServerException

from fvi.image_io import MAX_BYTES
from fvi.schema import FIELDS, FieldResult, OcrResult
from fvi.schema import Warning as CoreWarning
from fvi.synth.dataset import generate
from fvi.triton_launcher import free_port
from gateway.app import create_app
from gateway.config import CONNECT_RETRIES, Settings
from gateway.errors import ApiError, from_triton
from gateway.metrics import Metrics
from gateway.models import Timing, build_response
from gateway.process import start_gateway, stop_gateway
from gateway.triton import Ensemble, not_sent

TIMEOUT = 120  # two CPU cores shared with whatever else runs
CARD_SEED = 7
API_KEY = "test-key-0123456789abcdef"
OCR_KEYS = {"request_id", "status", "card_type", "card_type_confidence", "card_confidence", "corners", "fields", "warnings",
            "annotated_image", "timing_ms"}


def _encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **options)
    return buf.getvalue()


def _png_header(width: int, height: int) -> bytes:
    """A PNG that claims width x height (a decompression bomb's header) with a few bytes of pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1024))
            + chunk(b"IEND", b""))


GREY_JPEG = _encode(Image.new("RGB", (640, 480), (128, 128, 128)), "JPEG")  # a photo with no card


@pytest.fixture(scope="module")
def any_jpeg() -> bytes:
    return next(iter(generate(count=1, seed=CARD_SEED))).capture.jpeg


def _assert_card(body: dict) -> None:
    assert 0.0 <= body["card_confidence"] <= 1.0
    assert len(body["corners"]) == 4 and all(len(p) == 2 for p in body["corners"])
    assert list(body["fields"]) == list(FIELDS)
    for f in body["fields"].values():
        assert set(f) == {"value", "confidence"}
        assert isinstance(f["value"], str)
        assert 0.0 <= f["confidence"] <= 1.0
    assert isinstance(body["warnings"], list)
    for w in body["warnings"]:
        assert set(w) == {"code", "fields", "message"} and w["code"] and w["message"]
        assert set(w["fields"]) <= set(FIELDS)


def _assert_ocr_body(body: dict) -> None:
    assert set(body) == OCR_KEYS
    assert body["status"] == "ok"
    _assert_card(body)
    assert body["timing_ms"]["total"] >= body["timing_ms"]["inference"] > 0


def _assert_error(r: httpx.Response, status: int, code: str | None = None) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error", "request_id"}
    assert body["request_id"] == r.headers["x-request-id"]
    assert body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
    return body


# ---------------------------------------------------------------- unit: no server


def _result(status: str = "ok", warnings: list | None = None, **fields: FieldResult) -> str:
    corners = [[10.0, 20.0], [300.0, 22.0], [305.0, 210.0], [8.0, 205.0]]
    doc = OcrResult(status, "cccd_chip_2021" if status == "ok" else None, 0.93, corners, dict(fields), 5).to_dict()
    if warnings is None:
        doc.pop("warnings", None)  # as an ensemble from before warnings existed
    else:
        doc["warnings"] = warnings
    return json.dumps(doc, ensure_ascii=False)


def test_ok_result_becomes_the_documented_body():
    result = _result(id_number=FieldResult("001234567890", 0.98, ["001234567890"]),
                     full_name=FieldResult("NGUYỄN VĂN A", 0.9, ["NGUYỄN VĂN A"]))
    body = build_response(result.encode("utf-8"), "rid-1", Timing(inference=12.5, total=14.0))
    d = json.loads(body.model_dump_json())
    _assert_ocr_body(d)
    assert d["request_id"] == "rid-1" and d["card_type"] == "cccd_chip_2021"
    assert d["fields"]["full_name"] == {"value": "NGUYỄN VĂN A", "confidence": 0.9}
    assert d["fields"]["sex"] == {"value": "", "confidence": 0.0}  # absent field filled, not dropped
    assert d["corners"][2] == [305.0, 210.0]
    assert d["warnings"] == [] and d["annotated_image"] is None  # RESULT without warnings (older ensembles)


def test_warnings_are_passed_through():
    warnings = [{"code": "blur", "fields": [], "message": "the card is blurred"},
                {"code": "date_invalid", "fields": ["date_of_expiry"], "message": "not a date"},
                {"code": "small_card", "field": None, "message": "move closer"},  # the single-field form
                {"code": "field_missing", "field": "sex", "message": "sex was not read"}]
    d = json.loads(build_response(_result(warnings=warnings), "rid", Timing(inference=1, total=1)).model_dump_json())
    assert d["warnings"] == [{"code": "blur", "fields": [], "message": "the card is blurred"},
                             {"code": "date_invalid", "fields": ["date_of_expiry"], "message": "not a date"},
                             {"code": "small_card", "fields": [], "message": "move closer"},
                             {"code": "field_missing", "fields": ["sex"], "message": "sex was not read"}]
    from_core = OcrResult("ok", "cccd_chip_2021", 0.9, [[0, 0], [1, 0], [1, 1], [0, 1]], {},
                          warnings=[CoreWarning("glare", [], "tilt it")]).to_json()  # the core's own serialisation
    assert build_response(from_core, "rid", Timing(inference=1, total=1)).warnings[0].code == "glare"


@pytest.mark.parametrize("warnings", ["blur", [{"fields": []}], [{"code": "blur", "fields": [], "message": 3}],
                                      [{"code": "blur", "fields": "sex", "message": "m"}]])
def test_malformed_warnings_are_502(warnings):
    with pytest.raises(ApiError) as e:
        build_response(_result(warnings=warnings), "rid", Timing(inference=1, total=1))
    assert (e.value.status, e.value.code) == (502, "triton_error")


def test_no_card_result_is_422():
    with pytest.raises(ApiError) as e:
        build_response(_result("no_card"), "rid", Timing(inference=1, total=1))
    assert (e.value.status, e.value.code) == (422, "no_card")


@pytest.mark.parametrize("text", ["", "not json", '{"fields": {}}', '{"status": "weird"}'])
def test_unreadable_result_is_502(text):
    with pytest.raises(ApiError) as e:
        build_response(text, "rid", Timing(inference=1, total=1))
    assert (e.value.status, e.value.code) == (502, "triton_error")


def test_invalid_result_does_not_quote_field_values():
    bad = _result(full_name=FieldResult("NGUYỄN VĂN A", 1.5))  # confidence out of range
    with pytest.raises(ApiError) as e:
        build_response(bad, "rid", Timing(inference=1, total=1))
    assert e.value.status == 502 and "NGUY" not in str(e.value) and e.value.__cause__ is None


@pytest.mark.parametrize("message,status,http,code", [
    ("in ensemble 'fvi_ensemble', corrupt_image: the JPEG image could not be decoded", "StatusCode.INTERNAL", 400, "corrupt_image"),
    ("not_an_image: the bytes are not a readable image", "StatusCode.INTERNAL", 400, "not_an_image"),
    ("unsupported_format: GIF images are not accepted", "StatusCode.INTERNAL", 415, "unsupported_format"),
    ("too_many_pixels: the image is 9000x9000", "StatusCode.INTERNAL", 413, "too_many_pixels"),
    ("failed to connect to all addresses", "StatusCode.UNAVAILABLE", 503, "triton_unavailable"),
    ("Server is stopping, scheduler for model has stopped accepting new inference requests", "StatusCode.UNAVAILABLE", 503, "triton_unavailable"),
    ("Request for unknown model: 'fvi_ensemble' has no available versions", "StatusCode.NOT_FOUND", 503, "triton_unavailable"),
    ("in ensemble 'fvi_ensemble', detector_unavailable: the detector's second look failed (Server is stopping); retry",
     "StatusCode.INTERNAL", 503, "triton_unavailable"),  # line_crops' BLS call during a restart
    ("in ensemble 'fvi_ensemble', reader_unavailable: reading the page turned over failed (Server is stopping); "
     "retry", "StatusCode.INTERNAL", 503, "triton_unavailable"),  # cropper's BLS call during a restart
    ("Deadline Exceeded", "StatusCode.DEADLINE_EXCEEDED", 504, "triton_timeout"),
    ("onnxruntime exploded", "StatusCode.INTERNAL", 502, "triton_error"),
])
def test_triton_errors_map_to_http(message, status, http, code):
    err = from_triton(InferenceServerException(msg=message, status=status), retry_after_s=5)
    assert (err.status, err.code) == (http, code)
    assert ("Retry-After" in err.headers) == (http == 503)


@pytest.mark.parametrize("message,status,retry", [
    ("failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: Failed to connect to remote host: "
     "Connection refused", "StatusCode.UNAVAILABLE", True),
    ("Socket closed", "StatusCode.UNAVAILABLE", False),  # may have reached Triton
    ("Server is stopping", "StatusCode.UNAVAILABLE", False),
    ("failed to connect to all addresses", "StatusCode.DEADLINE_EXCEEDED", False),
    ("Connection refused", "StatusCode.INTERNAL", False),
])
def test_only_connection_failures_are_retried(message, status, retry):
    assert not_sent(InferenceServerException(msg=message, status=status)) is retry


def test_settings_from_env():
    assert Settings.from_env({}) == Settings()
    s = Settings.from_env({"FVI_TRITON_URL": "triton:9001", "FVI_MAX_UPLOAD_BYTES": "1000", "FVI_REQUEST_TIMEOUT_S": "2.5",
                           "FVI_MAX_BATCH_IMAGES": "3", "FVI_MAX_BATCH_BYTES": "5000", "FVI_MAX_IN_FLIGHT": "2",
                           "FVI_API_KEY": API_KEY, "FVI_CORS_ORIGINS": "https://a.example, https://b.example",
                           "FVI_LOG_LEVEL": "debug"})
    assert (s.triton_url, s.max_upload_bytes, s.request_timeout_s) == ("triton:9001", 1000, 2.5)
    assert (s.max_batch_images, s.max_batch_bytes, s.max_in_flight) == (3, 5000, 2)
    assert s.api_key == API_KEY and s.cors_origins == ("https://a.example", "https://b.example")
    assert s.log_level == "DEBUG"
    for env, match in [({"FVI_MAX_UPLOAD_BYTES": "lots"}, "FVI_MAX_UPLOAD_BYTES"),
                       ({"FVI_MAX_IN_FLIGHT": "0"}, "max_in_flight"),
                       ({"FVI_API_KEY": "short"}, "at least 16"),
                       ({"FVI_LOG_LEVEL": "chatty"}, "log_level")]:
        with pytest.raises(ValueError, match=match):
            Settings.from_env(env)


def _in_process(app, requests: list[dict]) -> list[httpx.Response]:
    """Run the app's lifespan (which opens the gRPC client) and send requests through ASGI, one at a time."""
    async def run() -> list[httpx.Response]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway", timeout=30) as client:
                return [await client.request(**r) for r in requests]
    return asyncio.run(run())


def _metric(app_or_text, name: str, **labels: str) -> float:
    """A sample's value from an app's registry or from /metrics text; 0 when absent."""
    text = app_or_text if isinstance(app_or_text, str) else app_or_text.state.metrics.render().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def test_unreachable_triton_gives_503_with_retry_after_after_retrying(any_jpeg):
    app = create_app(f"127.0.0.1:{free_port()}")  # nothing listens there
    health, ready, ocr, batch = _in_process(app, [
        {"method": "GET", "url": "/healthz"},
        {"method": "GET", "url": "/readyz"},
        {"method": "POST", "url": "/v1/ocr", "files": {"image": ("card.jpg", any_jpeg, "image/jpeg")}},
        {"method": "POST", "url": "/v1/ocr/batch", "files": [("images", ("a.jpg", any_jpeg, "image/jpeg")),
                                                            ("images", ("b.jpg", any_jpeg, "image/jpeg"))]},
    ])
    assert health.status_code == 200
    _assert_error(ready, 503, "triton_unavailable")
    _assert_error(ocr, 503, "triton_unavailable")
    _assert_error(batch, 503, "triton_unavailable")  # every image unavailable: the whole batch is 503
    for r in (ready, ocr, batch):
        assert int(r.headers["retry-after"]) > 0
    # connection refused = nothing sent: each of the 3 images was retried CONNECT_RETRIES times
    assert _metric(app, "fvi_gateway_triton_retries_total") == 3 * CONNECT_RETRIES
    assert _metric(app, "fvi_gateway_errors_total", code="triton_unavailable") == 3


def test_triton_that_never_answers_gives_504_without_retry():
    """A socket that accepts connections but never speaks gRPC: the per-request deadline must fire."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        app = create_app(f"127.0.0.1:{silent.getsockname()[1]}", request_timeout_s=0.5)
        (ocr,) = _in_process(app, [{"method": "POST", "url": "/v1/ocr", "content": b"\xff\xd8\xff",
                                    "headers": {"content-type": "image/jpeg"}}])
    _assert_error(ocr, 504, "triton_timeout")
    assert _metric(app, "fvi_gateway_triton_retries_total") == 0  # it may have been sent: never resent


def test_in_flight_calls_to_triton_are_bounded():
    """8 calls at once with max_in_flight=2: never more than 2 reach Triton; every call is answered."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        settings = Settings(triton_url=f"127.0.0.1:{silent.getsockname()[1]}", max_in_flight=2, request_timeout_s=0.4)

        async def run() -> tuple[list[Any], float]:
            metrics = Metrics()
            ensemble = Ensemble(settings, metrics)
            peak = 0.0

            async def watch() -> None:
                nonlocal peak
                while True:
                    peak = max(peak, metrics.registry.get_sample_value("fvi_gateway_triton_calls_in_flight"))
                    await asyncio.sleep(0.005)

            watcher = asyncio.create_task(watch())
            try:
                outcomes = await asyncio.gather(*(ensemble.infer(b"x", f"r{i}") for i in range(8)),
                                                return_exceptions=True)
            finally:
                watcher.cancel()
                await ensemble.close()
            return outcomes, peak

        outcomes, peak = asyncio.run(run())
    assert peak == 2
    assert all(isinstance(o, ApiError) for o in outcomes)
    codes = sorted({o.code for o in outcomes})
    assert "triton_timeout" in codes and set(codes) <= {"triton_timeout", "overloaded"}
    assert all(o.status == 503 for o in outcomes if o.code == "overloaded")


def test_upload_limit_is_enforced_while_reading():
    """A chunked body (no Content-Length) is cut off once it passes the cap; Triton is never called."""
    app = create_app(f"127.0.0.1:{free_port()}", max_upload_bytes=1000, max_batch_bytes=3000)

    async def chunks():
        for _ in range(100):
            yield b"\0" * 4096

    declared, small_limit, streamed, batch, big_items, other = _in_process(app, [
        {"method": "POST", "url": "/v1/ocr", "content": b"\0" * 200_000, "headers": {"content-type": "image/jpeg"}},
        {"method": "POST", "url": "/v1/ocr", "content": b"\0" * 5000, "headers": {"content-type": "image/jpeg"}},
        {"method": "POST", "url": "/v1/ocr", "content": chunks(), "headers": {"content-type": "image/jpeg"}},
        {"method": "POST", "url": "/v1/ocr/batch", "files": [("images", ("a.jpg", b"\0" * 30_000, "image/jpeg"))] * 3},
        {"method": "POST", "url": "/v1/ocr/batch", "files": [("images", ("a.jpg", b"\0" * 2000, "image/jpeg"))] * 2},
        {"method": "POST", "url": "/healthz", "content": b"\0" * 100_000},  # other routes: 64 KiB
    ])
    for r in (declared, small_limit, streamed):
        _assert_error(r, 413, "image_too_large")
    _assert_error(batch, 413, "batch_too_large")
    assert big_items.status_code == 200  # the batch fits; each image alone is over the per-image limit
    assert [(i["http_status"], i["error"]["code"]) for i in big_items.json()["items"]] == [(413, "image_too_large")] * 2
    _assert_error(other, 413, "request_too_large")
    assert _metric(app, "fvi_gateway_triton_retries_total") == 0


def test_uploads_never_touch_the_disk(monkeypatch, any_jpeg):
    """Starlette spools uploads over 1 MB to a temporary file; the gateway's parser must not."""
    created: list[str] = []

    def refuse(*args: Any, **kwargs: Any):
        created.append("temporary file")
        raise AssertionError("the gateway created a temporary file")

    for name in ("TemporaryFile", "NamedTemporaryFile", "mkstemp", "mkdtemp"):
        monkeypatch.setattr(tempfile, name, refuse)
    big = any_jpeg + b"\0" * (3 * 2**20)  # 3 MB, well past Starlette's 1 MB spool threshold
    app = create_app(f"127.0.0.1:{free_port()}")
    single, batch = _in_process(app, [
        {"method": "POST", "url": "/v1/ocr", "files": {"image": ("card.jpg", big, "image/jpeg")}},
        {"method": "POST", "url": "/v1/ocr/batch", "files": [("images", ("a.jpg", big, "image/jpeg"))] * 2},
    ])
    assert created == []
    _assert_error(single, 503, "triton_unavailable")  # parsed fine, then Triton (absent) was called
    _assert_error(batch, 503, "triton_unavailable")


def test_cors_is_off_by_default_and_on_for_configured_origins():
    preflight = {"method": "OPTIONS", "url": "/v1/ocr",
                 "headers": {"Origin": "https://kyc.example", "Access-Control-Request-Method": "POST"}}
    simple = {"method": "GET", "url": "/healthz", "headers": {"Origin": "https://kyc.example"}}
    off_pre, off_get = _in_process(create_app(f"127.0.0.1:{free_port()}"), [preflight, simple])
    assert "access-control-allow-origin" not in off_pre.headers and off_pre.status_code == 405
    assert "access-control-allow-origin" not in off_get.headers
    on = create_app(f"127.0.0.1:{free_port()}", cors_origins=("https://kyc.example",))
    on_pre, on_get, other = _in_process(on, [preflight, simple, {**simple, "headers": {"Origin": "https://evil.example"}}])
    assert on_pre.status_code == 200 and on_pre.headers["access-control-allow-origin"] == "https://kyc.example"
    assert on_get.headers["access-control-allow-origin"] == "https://kyc.example"
    assert "x-request-id" in on_get.headers["access-control-expose-headers"].lower()
    assert "access-control-allow-origin" not in other.headers


# ---------------------------------------------------------------- end to end: real Triton, real uvicorn


@pytest.fixture(scope="module")
def http(gateway_url: str):
    with httpx.Client(base_url=gateway_url, timeout=TIMEOUT) as client:
        yield client


@pytest.fixture(scope="module")
def card(http) -> bytes:
    """The first card of seed CARD_SEED the served models read (200): deterministic for given models."""
    for sample in generate(count=6, seed=CARD_SEED):
        if http.post("/v1/ocr", content=sample.capture.jpeg, headers={"Content-Type": "image/jpeg"}).status_code == 200:
            return sample.capture.jpeg
    pytest.fail(f"none of the first 6 cards of seed {CARD_SEED} was read (200); are the models broken?")


def _part(data: bytes, name: str = "card.jpg", kind: str = "image/jpeg") -> tuple[str, bytes, str]:
    return (name, data, kind)


@pytest.mark.e2e
def test_health_and_readiness(http):
    assert http.get("/healthz").json() == {"status": "alive"}
    r = http.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ready"}


@pytest.mark.e2e
def test_card_as_multipart_upload(http, card):
    r = http.post("/v1/ocr", files={"image": _part(card)}, headers={"X-Request-ID": "session-0001"})
    assert r.status_code == 200, r.text
    body = r.json()
    _assert_ocr_body(body)
    assert body["request_id"] == r.headers["x-request-id"] == "session-0001"
    assert body["annotated_image"] is None


@pytest.mark.e2e
def test_card_as_raw_jpeg_body(http, card):
    r = http.post("/v1/ocr", content=card, headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 200, r.text
    _assert_ocr_body(r.json())


@pytest.mark.e2e
def test_photo_without_a_card_is_422(http):
    _assert_error(http.post("/v1/ocr", files={"image": _part(GREY_JPEG, "grey.jpg")}), 422, "no_card")


@pytest.mark.e2e
def test_debug_returns_the_annotated_photo(http, card):
    r = http.post("/v1/ocr", params={"debug": "1"}, files={"image": _part(card)})
    assert r.status_code == 200, r.text
    body = r.json()
    _assert_ocr_body(body)
    image = body["annotated_image"]
    assert image["media_type"] == "image/jpeg"
    drawn = cv2.imdecode(np.frombuffer(base64.b64decode(image["data_base64"], validate=True), np.uint8), cv2.IMREAD_COLOR)
    original = cv2.imdecode(np.frombuffer(card, np.uint8), cv2.IMREAD_COLOR)
    assert drawn is not None and drawn.shape == original.shape
    assert np.abs(drawn.astype(int) - original.astype(int)).mean() > 0.5  # something was drawn on it


@pytest.mark.e2e
def test_batch_answers_each_image_in_order(http, card):
    files = [("images", _part(card)), ("images", _part(GREY_JPEG, "grey.jpg")),
             ("images", _part(card[: len(card) // 2], "cut.jpg")), ("images", _part(b"GIF89a", "x.gif", "image/gif")),
             ("images", _part(card, "again.jpg"))]
    r = http.post("/v1/ocr/batch", files=files, headers={"X-Request-ID": "batch-1"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"request_id", "count", "items", "timing_ms"}
    assert body["request_id"] == "batch-1" and body["count"] == 5
    assert [i["index"] for i in body["items"]] == [0, 1, 2, 3, 4]
    assert [i["http_status"] for i in body["items"]] == [200, 422, 400, 415, 200]
    assert [(i["error"] or {}).get("code") for i in body["items"]] == [None, "no_card", "corrupt_image",
                                                                        "unsupported_media_type", None]
    for item in (body["items"][0], body["items"][4]):
        assert item["error"] is None
        _assert_card(item["result"])
        assert item["result"]["annotated_image"] is None
    assert body["items"][0]["result"]["fields"] == body["items"][4]["result"]["fields"]  # same photo, same read
    for item in body["items"][1:4]:
        assert item["result"] is None and item["error"]["message"]
    assert body["timing_ms"]["total"] >= body["timing_ms"]["inference"] > 0


@pytest.mark.e2e
def test_batch_with_debug(http, card):
    r = http.post("/v1/ocr/batch", params={"debug": "true"}, files=[("images", _part(card))] * 2)
    assert r.status_code == 200, r.text
    for item in r.json()["items"]:
        assert base64.b64decode(item["result"]["annotated_image"]["data_base64"])[:3] == b"\xff\xd8\xff"


def _gif() -> bytes:
    return _encode(Image.new("RGB", (200, 120), (200, 30, 30)), "GIF")


@dataclass
class Bad:
    """One kind of bad request: how to send it (given a good card's bytes), and the answer expected."""

    send: Callable[[bytes], dict[str, Any]]
    status: int
    code: str
    path: str = "/v1/ocr"
    method: str = "POST"


def _upload(data: bytes | Callable[[bytes], bytes], name: str = "card.jpg", kind: str = "image/jpeg"):
    return lambda card: {"files": {"image": (name, data(card) if callable(data) else data, kind)}}


def _raw(data: bytes | Callable[[bytes], bytes], kind: str | None):
    return lambda card: {"content": data(card) if callable(data) else data,
                         "headers": {"Content-Type": kind} if kind else {}}


BAD_INPUTS: dict[str, Bad] = {
    "empty file": Bad(_upload(b""), 400, "empty_image"),
    "random bytes": Bad(_upload(bytes(range(256)) * 64), 400, "not_an_image"),
    "truncated jpeg": Bad(_upload(lambda c: c[: len(c) // 2]), 400, "corrupt_image"),
    "jpeg cut inside its header": Bad(_upload(lambda c: c[:600]), 400, "not_an_image"),
    "jpeg markers only": Bad(_upload(b"\xff\xd8\xff\xd9"), 400, "not_an_image"),
    "truncated png": Bad(_upload(lambda c: _encode(Image.open(io.BytesIO(c)), "PNG")[:40_000], "c.png", "image/png"),
                         400, "corrupt_image"),
    "png signature only": Bad(_upload(b"\x89PNG\r\n\x1a\n", "c.png", "image/png"), 400, "not_an_image"),
    "pdf as octet-stream": Bad(_upload(b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n%%EOF\n", "id.pdf", "application/octet-stream"),
                               400, "not_an_image"),
    "tiny image": Bad(_upload(_encode(Image.new("RGB", (32, 32)), "PNG"), "t.png", "image/png"), 400, "image_too_small"),
    "gif declared as gif": Bad(_upload(_gif(), "card.gif", "image/gif"), 415, "unsupported_media_type"),
    "gif sent as octet-stream": Bad(_upload(_gif(), "card.bin", "application/octet-stream"), 415, "unsupported_format"),
    "icon declared as png": Bad(_upload(_encode(Image.new("RGB", (64, 64)), "ICO"), "c.png", "image/png"),
                                415, "unsupported_format"),
    "svg": Bad(_upload(b'<svg xmlns="http://www.w3.org/2000/svg"/>', "c.svg", "image/svg+xml"), 415, "unsupported_media_type"),
    "text file": Bad(_upload(b"name: NGUYEN VAN A", "notes.txt", "text/plain"), 415, "unsupported_media_type"),
    "raw text body": Bad(_raw(b"hello", "text/plain"), 415, "unsupported_media_type"),
    "raw json body": Bad(_raw(b'{"image": "..."}', "application/json"), 415, "unsupported_media_type"),
    "raw body without content type": Bad(_raw(lambda c: c, None), 415, "unsupported_media_type"),
    "raw empty body": Bad(_raw(b"", "image/jpeg"), 400, "empty_image"),
    "multipart without the image field": Bad(lambda c: {"files": {"photo": ("card.jpg", c, "image/jpeg")}},
                                             400, "missing_image"),
    "image sent as a text field": Bad(lambda c: {"data": {"image": "not a file"}, "files": {"other": ("x", b"x")}},
                                      400, "missing_image"),
    "two images on /v1/ocr": Bad(lambda c: {"files": [("image", ("a.jpg", c, "image/jpeg"))] * 2}, 400, "too_many_images"),
    "multipart without boundary": Bad(_raw(b"--x\r\n\r\n", "multipart/form-data"), 400, "invalid_multipart"),
    "multipart cut short": Bad(_raw(b'--b\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n'
                                    b'Content-Type: image/jpeg\r\n\r\n\xff\xd8\xff', "multipart/form-data; boundary=b"),
                               400, "invalid_multipart"),
    "pixel bomb (48 MP header)": Bad(_upload(_png_header(8000, 6000), "bomb.png", "image/png"), 413, "too_many_pixels"),
    "upload over the byte limit": Bad(_raw(lambda c: c + b"\0" * (MAX_BYTES + 1 - len(c)), "image/jpeg"),
                                      413, "image_too_large"),
    "multipart far over the limit": Bad(_upload(lambda c: c + b"\0" * (MAX_BYTES + 2**20)), 413, "image_too_large"),
    "debug flag not a boolean": Bad(lambda c: {"params": {"debug": "maybe"}, "files": {"image": ("a.jpg", c, "image/jpeg")}},
                                    400, "invalid_request"),
    "GET on /v1/ocr": Bad(lambda c: {}, 405, "method_not_allowed", method="GET"),
    "unknown route": Bad(lambda c: {}, 404, "not_found", path="/v1/nothing", method="GET"),
    "batch image sent as a text field": Bad(lambda c: {"data": {"images": "true"}, "files": [("images", ("a.jpg", c, "image/jpeg"))]},
                                            400, "missing_image", path="/v1/ocr/batch"),
    "batch without images": Bad(lambda c: {"files": {"image": ("a.jpg", c, "image/jpeg")}}, 400, "missing_image",
                                path="/v1/ocr/batch"),
    "batch over the image count": Bad(lambda c: {"files": [("images", ("a.jpg", b"x", "image/jpeg"))] * 9}, 413,
                                      "too_many_images", path="/v1/ocr/batch"),
    "batch as a raw body": Bad(_raw(lambda c: c, "image/jpeg"), 415, "unsupported_media_type", path="/v1/ocr/batch"),
}


@pytest.mark.e2e
@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_gets_a_clear_json_error(http, any_jpeg, case):
    bad = BAD_INPUTS[case]
    r = http.request(bad.method, bad.path, **bad.send(any_jpeg))
    _assert_error(r, bad.status, bad.code)


@pytest.mark.e2e
def test_huge_pixel_bomb_is_413(http):
    r = http.post("/v1/ocr", files={"image": ("bomb.png", _png_header(20000, 20000), "image/png")})
    _assert_error(r, 413, "too_many_pixels")


def _phone_formats(jpeg: bytes) -> dict[str, bytes]:
    """The card re-encoded the ways phones and browsers send photos."""
    photo = Image.open(io.BytesIO(jpeg)).convert("RGB")
    rgba = np.asarray(photo.convert("RGBA")).copy()
    rgba[..., 3] = 200
    rgba_image = Image.fromarray(rgba)

    def exif_rotated(orientation: int) -> bytes:  # pixels stored turned; the EXIF tag says how to turn them back
        turn = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270, 3: Image.Transpose.ROTATE_180}[orientation]
        exif = Image.Exif()
        exif[0x0112] = orientation
        return _encode(photo.transpose(turn), "JPEG", exif=exif.tobytes(), quality=92)

    bgr16 = cv2.cvtColor(np.asarray(photo), cv2.COLOR_RGB2BGR).astype(np.uint16) * 257
    return {
        "jpeg exif orientation 6": exif_rotated(6),
        "jpeg exif orientation 8": exif_rotated(8),
        "jpeg exif orientation 3": exif_rotated(3),
        "progressive jpeg": _encode(photo, "JPEG", progressive=True, quality=90),
        "cmyk jpeg": _encode(photo.convert("CMYK"), "JPEG", quality=90),
        "grayscale jpeg": _encode(photo.convert("L"), "JPEG", quality=90),
        "png with alpha": _encode(rgba_image, "PNG"),
        "grayscale png with alpha": _encode(photo.convert("LA"), "PNG"),
        "grayscale png": _encode(photo.convert("L"), "PNG"),
        "palette png": _encode(photo.convert("P", palette=Image.Palette.ADAPTIVE), "PNG"),
        "16-bit grayscale png": _encode(Image.fromarray(np.asarray(photo.convert("L")).astype(np.uint16) * 257), "PNG"),
        "16-bit rgb png": cv2.imencode(".png", bgr16)[1].tobytes(),
        "webp": _encode(photo, "WEBP", quality=85),
        "lossless webp with alpha": _encode(rgba_image, "WEBP", lossless=True),
    }


PHONE_FORMATS = list(_phone_formats(_encode(Image.new("RGB", (64, 64)), "JPEG")))
RAW_TYPES = {"png": "image/png", "webp": "image/webp"}


@pytest.mark.e2e
@pytest.mark.parametrize("kind", PHONE_FORMATS)
def test_phone_formats_are_read(http, card, kind):
    """Each is a photo of a card: 200, or 422 when the card is not found; never refused as a bad image.

    EXIF-rotated photos must come back with the corners of the upright photo (the same as the plain
    JPEG's), which shows the orientation was applied before the models ran.
    """
    data = _phone_formats(card)[kind]
    media = next((t for k, t in RAW_TYPES.items() if k in kind), "image/jpeg")
    r = http.post("/v1/ocr", content=data, headers={"Content-Type": media})
    assert r.status_code in (200, 422), r.text
    if r.status_code == 422:
        _assert_error(r, 422, "no_card")
        return
    _assert_ocr_body(r.json())
    if "exif" in kind:
        plain = http.post("/v1/ocr", content=card, headers={"Content-Type": "image/jpeg"}).json()
        moved = np.abs(np.array(r.json()["corners"]) - np.array(plain["corners"])).max()
        assert moved < 20, f"corners moved {moved:.0f} px: EXIF orientation not applied?"


@pytest.mark.e2e
def test_metrics_count_requests_latency_and_errors(http, card):
    before = http.get("/metrics").text
    http.post("/v1/ocr", content=card, headers={"Content-Type": "image/jpeg"})
    http.post("/v1/ocr", files={"image": ("c.jpg", b"not an image at all", "image/jpeg")})
    http.post("/v1/ocr/batch", files=[("images", ("a.jpg", b"", "image/jpeg")), ("images", ("b.jpg", card, "image/jpeg"))])
    r = http.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    after = r.text

    def delta(name: str, **labels: str) -> float:
        return _metric(after, name, **labels) - _metric(before, name, **labels)

    assert delta("fvi_gateway_requests_total", route="/v1/ocr", method="POST", status="200") == 1
    assert delta("fvi_gateway_requests_total", route="/v1/ocr", method="POST", status="400") == 1
    assert delta("fvi_gateway_requests_total", route="/v1/ocr/batch", method="POST", status="200") == 1
    assert delta("fvi_gateway_request_duration_seconds_count", route="/v1/ocr") == 2
    assert delta("fvi_gateway_errors_total", code="not_an_image") == 1
    assert delta("fvi_gateway_errors_total", code="empty_image") == 1  # a failed image inside a batch counts
    assert _metric(after, "fvi_gateway_requests_in_flight") == 1  # this very scrape
    assert "fvi_gateway_triton_calls_in_flight" in after


@pytest.mark.e2e
def test_openapi_documents_the_api(http):
    spec = http.get("/openapi.json").json()
    ocr = spec["paths"]["/v1/ocr"]["post"]
    assert {"multipart/form-data", "image/jpeg", "image/png", "image/webp"} <= set(ocr["requestBody"]["content"])
    assert {"200", "400", "413", "415", "422", "502", "503", "504"} <= set(ocr["responses"])
    assert "Retry-After" in ocr["responses"]["503"]["headers"]
    assert "/v1/ocr/batch" in spec["paths"] and "/metrics" in spec["paths"]
    schemas = spec["components"]["schemas"]
    assert {"warnings", "annotated_image", "fields", "corners"} <= set(schemas["OcrResponse"]["properties"])
    assert set(schemas["ResultWarning"]["properties"]) == {"code", "fields", "message"}
    assert "securitySchemes" not in spec.get("components", {})  # no key configured: no auth


@pytest.fixture(scope="module")
def keyed_gateway(triton, tmp_path_factory):
    """A second gateway process with an API key and one CORS origin, configured by environment like a deployment."""
    g = start_gateway(triton.grpc_url, tmp_path_factory.mktemp("keyed") / "gateway.log",
                      FVI_API_KEY=API_KEY, FVI_CORS_ORIGINS="https://kyc.example")
    try:
        with httpx.Client(base_url=g.url, timeout=TIMEOUT) as client:
            yield client
    finally:
        stop_gateway(g)


@pytest.mark.e2e
def test_api_key_is_required_when_configured(keyed_gateway, card):
    ocr = {"content": card, "headers": {"Content-Type": "image/jpeg"}}
    for headers in ({}, {"X-API-Key": "wrong-key-0123456789abcdef"}, {"Authorization": "Bearer nope"},
                    {"X-API-Key": API_KEY[:-1]}, {"Authorization": f"Basic {API_KEY}"}):
        r = keyed_gateway.post("/v1/ocr", content=card, headers={"Content-Type": "image/jpeg", **headers})
        _assert_error(r, 401, "unauthorized")
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert API_KEY not in r.text
    _assert_error(keyed_gateway.post("/v1/ocr/batch", files=[("images", ("a.jpg", card, "image/jpeg"))]), 401,
                  "unauthorized")
    ok_header = keyed_gateway.post("/v1/ocr", **{**ocr, "headers": {**ocr["headers"], "X-API-Key": API_KEY}})
    ok_bearer = keyed_gateway.post("/v1/ocr", **{**ocr, "headers": {**ocr["headers"], "Authorization": f"Bearer {API_KEY}"}})
    assert ok_header.status_code == ok_bearer.status_code == 200, ok_header.text
    assert keyed_gateway.get("/healthz").status_code == 200  # probes stay open
    assert keyed_gateway.get("/readyz").status_code == 200
    spec = keyed_gateway.get("/openapi.json").json()
    assert {"APIKeyHeader", "HTTPBearer"} <= set(spec["components"]["securitySchemes"])
    assert "401" in spec["paths"]["/v1/ocr"]["post"]["responses"]


@pytest.mark.e2e
def test_cors_origin_from_the_environment(keyed_gateway, http):
    r = keyed_gateway.options("/v1/ocr", headers={"Origin": "https://kyc.example", "Access-Control-Request-Method": "POST",
                                                  "Access-Control-Request-Headers": "x-api-key"})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://kyc.example"
    refused = keyed_gateway.post("/v1/ocr", headers={"Origin": "https://kyc.example"})  # no key: 401, still readable
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == "https://kyc.example"
    assert "access-control-allow-origin" not in http.get("/healthz", headers={"Origin": "https://kyc.example"}).headers
