"""Every failure the gateway reports, as (HTTP status, stable code, message) — one vocabulary for clients.

Image validation itself lives in the shared core (fvi.image_io.decode_image), run inside Triton's
`decode` step; its errors arrive as "<code>: <message>" and are mapped here, so the gateway never
decodes an image twice or disagrees with the ensemble about what is acceptable.
"""
from __future__ import annotations

import re

from tritonclient.utils import InferenceServerException

from fvi.schema import STEP_UNAVAILABLE_ERRORS

# fvi.image_io.ImageError codes -> HTTP status
IMAGE_ERROR_STATUS: dict[str, int] = {
    "empty_image": 400,
    "not_an_image": 400,
    "corrupt_image": 400,
    "image_too_small": 400,
    "unsupported_format": 415,
    "image_too_large": 413,
    "too_many_pixels": 413,
}
_IMAGE_ERROR = re.compile(r"\b(" + "|".join(IMAGE_ERROR_STATUS) + r"): (.+)", re.S)


class ApiError(Exception):
    """Raised anywhere in a request; rendered as {"error": {"code", "message"}, "request_id"}."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def unavailable(message: str, retry_after_s: int, code: str = "triton_unavailable") -> ApiError:
    """503 with Retry-After: the client should simply try again later."""
    return ApiError(503, code, message, {"Retry-After": str(retry_after_s)})


def from_triton(exc: InferenceServerException, retry_after_s: int) -> ApiError:
    """Map a tritonclient error: the core's image errors first, then the gRPC status of the call."""
    text = exc.message() or ""
    m = _IMAGE_ERROR.search(text)
    if m:
        code = m.group(1)
        return ApiError(IMAGE_ERROR_STATUS[code], code, m.group(2).strip())
    status = exc.status() or ""
    if any(f"{code}:" in text for code in STEP_UNAVAILABLE_ERRORS):  # a step could not reach a network: restarting
        return unavailable("the inference server is not available; retry later", retry_after_s)
    if status.endswith("DEADLINE_EXCEEDED"):
        return ApiError(504, "triton_timeout", "the inference server did not answer in time; retry later")
    if status.endswith(("UNAVAILABLE", "NOT_FOUND", "CANCELLED")):
        # not listening, restarting, or the ensemble not loaded: all transient from the client's view
        return unavailable("the inference server is not available; retry later", retry_after_s)
    return ApiError(502, "triton_error", "the inference server failed to process the image")
