"""FastAPI gateway: accepts a photo, calls the Triton `fvi_ensemble` over gRPC, returns the fields as JSON.

It holds no model and decodes no image: the ensemble does the work (image validation included, in its
`decode` step with the shared fvi.image_io), the gateway enforces upload size and content type, maps
errors to HTTP statuses and keeps one async gRPC client for the process lifetime.

PRIVACY: logs carry only request id, endpoint, HTTP status, latency and error code — never field
values, image bytes or anything derived from them. Unhandled exceptions are logged by type name only,
since their messages (e.g. pydantic's) may quote the values.

Run: `uvicorn gateway.app:app_from_env --factory` (configured by FVI_* variables) or `python -m gateway.serve`.
"""
from __future__ import annotations

import logging
import re
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import numpy as np
import tritonclient.grpc as grpcclient
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import MutableHeaders, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from tritonclient.grpc.aio import InferenceServerClient
from tritonclient.utils import InferenceServerException

from fvi.image_io import MAX_BYTES
from gateway.config import DEFAULT_REQUEST_TIMEOUT_S, MODEL_NAME, Settings
from gateway.errors import ApiError, from_triton, unavailable
from gateway.models import ErrorBody, ErrorResponse, HealthResponse, OcrResponse, Timing, build_response

logger = logging.getLogger("gateway")

# Declared types we pass on; the ensemble then checks what the bytes really are.
RAW_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "application/octet-stream"})
PART_IMAGE_TYPES = RAW_IMAGE_TYPES | {"image/jpg", "image/pjpeg", ""}  # "" = the part declared no type
MULTIPART_SLACK = 64 * 1024  # boundaries and part headers around the image in a multipart body
ROUTES = ("/v1/ocr", "/healthz", "/readyz")
PROBES = ("/healthz", "/readyz")
_CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")

OCR_REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "description": "multipart/form-data with the photo in field `image`, or the raw photo as the body",
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object", "required": ["image"],
                           "properties": {"image": {"type": "string", "format": "binary"}}},
            },
            **{t: {"schema": {"type": "string", "format": "binary"}} for t in sorted(RAW_IMAGE_TYPES)},
        },
    }
}
ERROR_RESPONSES = {s: {"model": ErrorResponse} for s in (400, 413, 415, 422, 502, 503, 504)}


class _BodyTooLarge(Exception):
    pass


def error_response(status: int, code: str, message: str, request_id: str,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body = ErrorResponse(error=ErrorBody(code=code, message=message), request_id=request_id)
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def _request_id(request: Request) -> str:
    return getattr(request.state, "request_id", "-")


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


class RequestContext:
    """Pure ASGI middleware: request id, body size cap while reading, last-resort 500, one log line.

    The cap is enforced on the bytes as they arrive (Content-Length is checked first, chunked bodies
    are counted), so an oversized upload is refused before it is buffered or spooled to disk.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        headers = dict((k.lower(), v) for k, v in scope["headers"])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _CLIENT_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        response = {"status": 0}
        received = 0

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                response["status"] = message["status"]
                MutableHeaders(scope=message).append("X-Request-ID", request_id)
            await send(message)

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise _BodyTooLarge
            return message

        async def reply(status: int, code: str, message: str) -> None:
            state["error_code"] = code
            await error_response(status, code, message, request_id)(scope, receive, send_with_id)

        too_large = f"the upload is larger than {self.max_body_bytes} bytes; send a smaller photo"
        try:
            declared = headers.get(b"content-length", b"")
            if declared.isdigit() and int(declared) > self.max_body_bytes:
                await reply(413, "image_too_large", too_large)
            else:
                await self.app(scope, counted_receive, send_with_id)
        except _BodyTooLarge:
            if not response["status"]:
                await reply(413, "image_too_large", too_large)
        except Exception as exc:  # noqa: BLE001 — last resort; type name only (privacy)
            state["error_code"] = "internal_error"
            logger.error("request_id=%s unhandled %s", request_id, type(exc).__name__)
            if not response["status"]:
                await reply(500, "internal_error", "the gateway failed; retry later")
        finally:
            path = scope.get("path", "")
            logger.log(logging.DEBUG if path in PROBES else logging.INFO,
                       "request_id=%s endpoint=%s status=%s latency_ms=%.1f error=%s",
                       request_id, path if path in ROUTES else "other", response["status"] or "-",
                       (time.perf_counter() - start) * 1000, state.get("error_code", "-"))


async def read_image(request: Request, max_bytes: int) -> bytes:
    """The photo from a multipart field `image` or from a raw image body, refusing what isn't one."""
    media = _media_type(request.headers.get("content-type"))
    if media == "multipart/form-data":
        try:
            form = await request.form(max_files=1, max_fields=16)
        except (MultiPartException, StarletteHTTPException):
            raise ApiError(400, "invalid_multipart", "the multipart body could not be parsed") from None
        try:
            upload = form.get("image")
            if not isinstance(upload, UploadFile):
                raise ApiError(400, "missing_image", "send the photo as a file in the multipart field 'image'")
            part_type = _media_type(upload.content_type)
            if part_type not in PART_IMAGE_TYPES:
                raise ApiError(415, "unsupported_media_type",
                               f"'{part_type}' is not accepted; send a JPEG, PNG or WebP photo")
            data = await upload.read(max_bytes + 1)
        finally:
            await form.close()
    elif media in RAW_IMAGE_TYPES:
        data = await request.body()
    else:
        raise ApiError(415, "unsupported_media_type",
                       f"Content-Type '{media or 'none'}' is not accepted; send multipart/form-data with field "
                       "'image', or the photo itself as image/jpeg, image/png or image/webp")
    if len(data) > max_bytes:
        raise ApiError(413, "image_too_large", f"the image is larger than {max_bytes} bytes; send a smaller photo")
    return data


async def run_ensemble(client: InferenceServerClient, settings: Settings, data: bytes, request_id: str) -> bytes:
    """One gRPC call to the ensemble; returns its RESULT JSON. Triton errors become ApiErrors."""
    image = grpcclient.InferInput("IMAGE", [1], "BYTES")
    image.set_data_from_numpy(np.array([data], dtype=np.object_))
    try:
        result = await client.infer(settings.model_name, [image],
                                    outputs=[grpcclient.InferRequestedOutput("RESULT")],
                                    request_id=request_id, client_timeout=settings.request_timeout_s)
    except InferenceServerException as exc:
        raise from_triton(exc, settings.retry_after_s) from None
    out = result.as_numpy("RESULT")
    if out is None or out.size != 1:
        raise ApiError(502, "triton_error", "the inference server returned no result")
    return out.reshape(-1)[0]


def _channel_args() -> list[tuple[str, int]]:
    """tritonclient's defaults, plus a short reconnect backoff so a restarted Triton is used within seconds."""
    keepalive = grpcclient.KeepAliveOptions()
    return [
        ("grpc.max_send_message_length", grpcclient.MAX_GRPC_MESSAGE_SIZE),
        ("grpc.max_receive_message_length", grpcclient.MAX_GRPC_MESSAGE_SIZE),
        ("grpc.keepalive_time_ms", keepalive.keepalive_time_ms),
        ("grpc.keepalive_timeout_ms", keepalive.keepalive_timeout_ms),
        ("grpc.keepalive_permit_without_calls", int(keepalive.keepalive_permit_without_calls)),
        ("grpc.http2.max_pings_without_data", keepalive.http2_max_pings_without_data),
        ("grpc.initial_reconnect_backoff_ms", 250),
        ("grpc.max_reconnect_backoff_ms", 2000),
    ]


def create_app(triton_url: str, *, max_upload_bytes: int = MAX_BYTES,
               request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S, model_name: str = MODEL_NAME) -> FastAPI:
    """The gateway for the Triton gRPC endpoint `triton_url` ("host:port")."""
    settings = Settings(triton_url=triton_url, max_upload_bytes=max_upload_bytes,
                        request_timeout_s=request_timeout_s, model_name=model_name)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # created inside the server's event loop, which the grpc.aio channel binds to
        app.state.triton = InferenceServerClient(settings.triton_url, channel_args=_channel_args())
        try:
            yield
        finally:
            await app.state.triton.close()

    app = FastAPI(title="FVI OCR gateway", version="1", lifespan=lifespan,
                  description="Vietnamese ID card OCR; the models run in NVIDIA Triton (`fvi_ensemble`).")
    app.state.settings = settings
    app.add_middleware(RequestContext, max_body_bytes=settings.max_upload_bytes + MULTIPART_SLACK)

    @app.exception_handler(ApiError)
    async def on_api_error(request: Request, exc: ApiError) -> JSONResponse:
        request.state.error_code = exc.code
        return error_response(exc.status, exc.code, exc.message, _request_id(request), exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        request.state.error_code = code
        message = exc.detail if isinstance(exc.detail, str) else "the request was refused"
        return error_response(exc.status_code, code, message, _request_id(request), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def on_invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        request.state.error_code = "invalid_request"  # FastAPI's default body would echo the input
        return error_response(400, "invalid_request", "the request is malformed", _request_id(request))

    @app.post("/v1/ocr", response_model=OcrResponse, responses=ERROR_RESPONSES, openapi_extra=OCR_REQUEST_BODY,
              summary="Read the fields of a photographed ID card")
    async def ocr(request: Request) -> OcrResponse:
        start = time.perf_counter()
        data = await read_image(request, settings.max_upload_bytes)
        sent = time.perf_counter()
        result = await run_ensemble(request.app.state.triton, settings, data, _request_id(request))
        done = time.perf_counter()
        timing = Timing(inference=round((done - sent) * 1000, 1), total=round((done - start) * 1000, 1))
        return build_response(result, _request_id(request), timing)

    @app.get("/healthz", response_model=HealthResponse, summary="The process is alive")
    async def healthz() -> HealthResponse:
        return HealthResponse(status="alive")

    @app.get("/readyz", response_model=HealthResponse, responses={503: {"model": ErrorResponse}},
             summary="Triton is live and the ensemble is loaded")
    async def readyz(request: Request) -> HealthResponse:
        client: InferenceServerClient = request.app.state.triton
        try:
            live = await client.is_server_live(client_timeout=settings.ready_timeout_s)
            ready = live and await client.is_model_ready(settings.model_name, client_timeout=settings.ready_timeout_s)
        except InferenceServerException:
            live = ready = False
        if not live:
            raise unavailable("the inference server is not reachable", settings.retry_after_s)
        if not ready:
            raise ApiError(503, "not_ready", f"the {settings.model_name} model is not loaded yet",
                           {"Retry-After": str(settings.retry_after_s)})
        return HealthResponse(status="ready")

    return app


def configure_logging(level: int = logging.INFO) -> None:
    """The gateway's log lines on stderr, once; uvicorn configures only its own loggers."""
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory`: settings from FVI_TRITON_URL, FVI_MAX_UPLOAD_BYTES, FVI_REQUEST_TIMEOUT_S."""
    configure_logging()
    s = Settings.from_env()
    return create_app(s.triton_url, max_upload_bytes=s.max_upload_bytes, request_timeout_s=s.request_timeout_s)
