"""FastAPI gateway: accepts photos, calls the Triton `fvi_ensemble` over gRPC, returns the fields as JSON.

It holds no model and validates no image itself: the ensemble does the work (image validation included,
in its `decode` step with the shared fvi.image_io). The gateway caps upload sizes, checks the API key,
bounds and retries its calls to Triton (gateway/triton.py), maps errors to HTTP statuses and exports
Prometheus metrics. Only `?debug=1` decodes the photo here, to draw on it.

PRIVACY: logs carry only request id, endpoint, HTTP status, latency and error code — never field
values, image bytes or anything derived from them; uploads never touch the disk (gateway/uploads.py).
Unhandled exceptions are logged by type name only, since their messages (e.g. pydantic's) may quote
the values.

Run: `uvicorn gateway.app:app_from_env --factory` (configured by FVI_* variables) or `python -m gateway.serve`.
"""
from __future__ import annotations

import asyncio
import logging
import re
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fvi.schema import STATUS_OK
from gateway.auth import require_api_key
from gateway.config import Settings
from gateway.debug import annotated_image
from gateway.errors import ApiError, unavailable
from gateway.metrics import CONTENT_TYPE, Metrics
from gateway.models import (BatchItem, BatchResponse, CardResult, ErrorBody, ErrorResponse, HealthResponse,
                            OcrResponse, ResultWarning, Timing, parse_result)
from gateway.triton import Ensemble
from gateway.uploads import RAW_IMAGE_TYPES, Upload, read_image, read_images

logger = logging.getLogger("gateway")

MULTIPART_SLACK = 64 * 1024  # boundaries and part headers around the images in a multipart body
OCR, BATCH = "/v1/ocr", "/v1/ocr/batch"
ROUTES = (OCR, BATCH, "/healthz", "/readyz", "/metrics")
QUIET = ("/healthz", "/readyz", "/metrics")  # probes and scrapes: logged at DEBUG
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
BATCH_REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "description": "multipart/form-data with the photos as repeated file fields `images`",
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object", "required": ["images"],
                           "properties": {"images": {"type": "array", "minItems": 1,
                                                     "items": {"type": "string", "format": "binary"}}}},
            },
        },
    }
}
RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before retrying", "required": True,
                               "schema": {"type": "string"}}}
DEBUG_QUERY = Query(False, description="also return the photo with corners, line boxes and read text drawn on it "
                                       "(base64 JPEG, in the response only)")


def _error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    docs: dict[int | str, dict[str, Any]] = {s: {"model": ErrorResponse} for s in statuses}
    if 503 in docs:
        docs[503]["headers"] = RETRY_AFTER
    return docs


def error_response(status: int, code: str, message: str, request_id: str,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body = ErrorResponse(error=ErrorBody(code=code, message=message), request_id=request_id)
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def _request_id(request: Request) -> str:
    return getattr(request.state, "request_id", "-")


class _BodyTooLarge(Exception):
    pass


class RequestContext:
    """Pure ASGI middleware: request id, body size cap while reading, metrics, last-resort 500, one log line.

    The cap is enforced on the bytes as they arrive (Content-Length is checked first, chunked bodies
    are counted), so an oversized upload is refused before it is buffered. Each route has its own cap
    (`body_caps`); any other path gets `MULTIPART_SLACK`.
    """

    def __init__(self, app: ASGIApp, body_caps: dict[str, tuple[int, str]], metrics: Metrics) -> None:
        self.app = app
        self.body_caps = body_caps  # path -> (max body bytes, error code)
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        path = scope.get("path", "")
        route = path if path in ROUTES else "other"
        headers = dict((k.lower(), v) for k, v in scope["headers"])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _CLIENT_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        response = {"status": 0}
        received = 0
        max_body, too_large_code = self.body_caps.get(path, (MULTIPART_SLACK, "request_too_large"))

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
                if received > max_body:
                    raise _BodyTooLarge
            return message

        async def reply(status: int, code: str, message: str) -> None:
            state["error_code"] = code
            await error_response(status, code, message, request_id)(scope, receive, send_with_id)

        too_large = f"the request body is larger than {max_body} bytes; send a smaller photo"
        self.metrics.in_flight.inc()
        try:
            declared = headers.get(b"content-length", b"")
            if declared.isdigit() and int(declared) > max_body:
                await reply(413, too_large_code, too_large)
            else:
                await self.app(scope, counted_receive, send_with_id)
        except _BodyTooLarge:
            if not response["status"]:
                await reply(413, too_large_code, too_large)
        except Exception as exc:  # noqa: BLE001 — last resort; type name only (privacy)
            state["error_code"] = "internal_error"
            logger.error("request_id=%s unhandled %s", request_id, type(exc).__name__)
            if not response["status"]:
                await reply(500, "internal_error", "the gateway failed; retry later")
        finally:
            elapsed = time.perf_counter() - start
            self.metrics.in_flight.dec()
            status = response["status"] or 500  # no response started: the client saw the connection drop
            self.metrics.requests.labels(route, scope.get("method", "-"), str(status)).inc()
            self.metrics.latency.labels(route).observe(elapsed)
            code = state.get("error_code")
            if code:
                self.metrics.errors.labels(code).inc()
            logger.log(logging.DEBUG if path in QUIET else logging.INFO,
                       "request_id=%s endpoint=%s status=%s latency_ms=%.1f error=%s",
                       request_id, route, response["status"] or "-", elapsed * 1000, code or "-")


async def read_card(ensemble: Ensemble, data: bytes, request_id: str, debug: bool) -> CardResult:
    """One photo through Triton -> CardResult (ApiError for a refused image, no card, or a Triton failure)."""
    out = await ensemble.infer(data, request_id, with_geometry=debug)
    card = parse_result(out.result)
    if debug:
        try:
            card.annotated_image = await asyncio.to_thread(annotated_image, data, out.result_dict(), out.corners,
                                                           out.line_meta)
        except Exception as exc:  # noqa: BLE001 — the drawing must never lose the result itself
            logger.warning("request_id=%s debug image failed: %s", request_id, type(exc).__name__)
            card.warnings.append(ResultWarning(code="debug_image_failed", fields=[],
                                               message="the annotated image could not be drawn"))
    return card


def create_app(triton_url: str, **options: Any) -> FastAPI:
    """The gateway for the Triton gRPC endpoint `triton_url` ("host:port"); `options` are other Settings fields."""
    settings = Settings(triton_url=triton_url, **options)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # created inside the server's event loop, which the grpc.aio channel binds to
        app.state.ensemble = Ensemble(settings, metrics)
        try:
            yield
        finally:
            await app.state.ensemble.close()

    app = FastAPI(title="FVI OCR gateway", version="1", lifespan=lifespan,
                  description="Vietnamese ID card OCR; the models run in NVIDIA Triton (`fvi_ensemble`). "
                              "Every error is JSON: {\"error\": {\"code\", \"message\"}, \"request_id\"}.")
    app.state.settings = settings
    app.state.metrics = metrics
    body_caps = {OCR: (settings.max_upload_bytes + MULTIPART_SLACK, "image_too_large"),
                 BATCH: (settings.max_batch_bytes + MULTIPART_SLACK, "batch_too_large")}
    app.add_middleware(RequestContext, body_caps=body_caps, metrics=metrics)
    if settings.cors_origins:  # added last = outermost, so error responses carry the CORS headers too
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Content-Type", "Authorization", "X-API-Key", "X-Request-ID"],
                           expose_headers=["X-Request-ID", "Retry-After"], max_age=600)
    secured = [Depends(require_api_key(settings.api_key))] if settings.api_key else []
    auth_errors = (401,) if settings.api_key else ()

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
        return error_response(400, "invalid_request", "the request is malformed (check the query parameters)",
                              _request_id(request))

    @app.post(OCR, response_model=OcrResponse, openapi_extra=OCR_REQUEST_BODY, dependencies=secured,
              responses=_error_responses(400, *auth_errors, 413, 415, 422, 502, 503, 504),
              summary="Read the fields of a photographed ID card")
    async def ocr(request: Request, debug: bool = DEBUG_QUERY) -> OcrResponse:
        start = time.perf_counter()
        data = await read_image(request, settings.max_upload_bytes)
        sent = time.perf_counter()
        card = await read_card(request.app.state.ensemble, data, _request_id(request), debug)
        done = time.perf_counter()
        timing = Timing(inference=round((done - sent) * 1000, 1), total=round((done - start) * 1000, 1))
        return OcrResponse(request_id=_request_id(request), status=STATUS_OK, timing_ms=timing, **dict(card))

    @app.post(BATCH, response_model=BatchResponse, openapi_extra=BATCH_REQUEST_BODY, dependencies=secured,
              responses=_error_responses(400, *auth_errors, 413, 415, 503),
              summary="Read several photos; one result or error per image, in upload order")
    async def ocr_batch(request: Request, debug: bool = DEBUG_QUERY) -> BatchResponse:
        """200 whenever the upload was read: each item carries the status /v1/ocr would have given that image.

        When Triton cannot be reached for any image, the whole answer is that 503 (with Retry-After),
        so a client retries the batch instead of inspecting every item.
        """
        start = time.perf_counter()
        request_id = _request_id(request)
        uploads = await read_images(request, settings.max_batch_images, settings.max_upload_bytes)
        ensemble: Ensemble = request.app.state.ensemble
        slowest = 0.0

        async def one(index: int, upload: Upload) -> tuple[BatchItem, ApiError | None]:
            nonlocal slowest
            if upload.error is not None:
                error = upload.error
            else:
                sent = time.perf_counter()
                try:
                    card = await read_card(ensemble, upload.data, f"{request_id}.{index}", debug)
                    return BatchItem(index=index, http_status=200, result=card), None
                except ApiError as exc:
                    error = exc
                finally:
                    slowest = max(slowest, time.perf_counter() - sent)
            return BatchItem(index=index, http_status=error.status,
                             error=ErrorBody(code=error.code, message=error.message)), error

        # concurrent; the Ensemble's semaphore bounds how many reach Triton at once
        done = await asyncio.gather(*(one(i, u) for i, u in enumerate(uploads)))
        errors = [e for _, e in done if e is not None]
        if errors and len(errors) == len(done) and all(e.status == 503 for e in errors):
            raise errors[0]
        for e in errors:
            metrics.errors.labels(e.code).inc()
        timing = Timing(inference=round(slowest * 1000, 1), total=round((time.perf_counter() - start) * 1000, 1))
        return BatchResponse(request_id=request_id, count=len(done), items=[item for item, _ in done], timing_ms=timing)

    @app.get("/healthz", response_model=HealthResponse, summary="The process is alive")
    async def healthz() -> HealthResponse:
        return HealthResponse(status="alive")

    @app.get("/readyz", response_model=HealthResponse, responses=_error_responses(503),
             summary="Triton is live and the ensemble is loaded")
    async def readyz(request: Request) -> HealthResponse:
        live, ready = await request.app.state.ensemble.ready()
        if not live:
            raise unavailable("the inference server is not reachable", settings.retry_after_s)
        if not ready:
            raise unavailable(f"the {settings.model_name} model is not loaded yet", settings.retry_after_s,
                              code="not_ready")
        return HealthResponse(status="ready")

    @app.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics (text exposition format)")
    async def prometheus_metrics() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    return app


def configure_logging(level: int | str = logging.INFO) -> None:
    """The gateway's log lines on stderr, once; uvicorn configures only its own loggers."""
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(level)


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory`: every setting from the FVI_* variables (see README)."""
    s = Settings.from_env()
    configure_logging(s.log_level)
    return create_app(**asdict(s))
