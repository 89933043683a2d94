"""Response bodies. Built from the ensemble's RESULT JSON (fvi.schema.OcrResult) by `build_response`."""
from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from fvi.schema import FIELDS, STATUS_NO_CARD, STATUS_OK
from gateway.errors import ApiError

Point = tuple[float, float]


class FieldValue(BaseModel):
    value: str = Field(description="normalised text; empty when the field was not read")
    confidence: float = Field(ge=0.0, le=1.0)


class Timing(BaseModel):
    inference: float = Field(description="round trip to the Triton ensemble, ms")
    total: float = Field(description="from request received to response built, ms")


class OcrResponse(BaseModel):
    request_id: str
    status: Literal["ok"]
    card_type: str | None
    card_confidence: float = Field(ge=0.0, le=1.0)
    corners: list[Point] = Field(min_length=4, max_length=4, description="TL, TR, BR, BL in image pixels")
    fields: dict[str, FieldValue] = Field(description=f"always the keys {', '.join(FIELDS)}")
    timing_ms: Timing


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody
    request_id: str


class HealthResponse(BaseModel):
    status: str


def build_response(result: str | bytes, request_id: str, timing: Timing) -> OcrResponse:
    """RESULT JSON -> OcrResponse; no card -> ApiError 422, malformed -> 502.

    Only the documented keys are copied (no raw line texts), and every field name is present so
    clients need no special case for a field the reader left empty.
    """
    try:
        doc = json.loads(result)
        status = doc["status"]
    except (ValueError, TypeError, KeyError):
        raise ApiError(502, "triton_error", "the inference server returned an unreadable result") from None
    if status == STATUS_NO_CARD:
        raise ApiError(422, "no_card", "no ID card was found in the image; photograph the whole card, flat and in focus")
    if status != STATUS_OK:
        raise ApiError(502, "triton_error", "the inference server returned an unknown status")
    try:
        got = doc.get("fields") or {}
        fields = {name: FieldValue(value=got[name]["value"], confidence=got[name]["confidence"]) if name in got
                  else FieldValue(value="", confidence=0.0) for name in FIELDS}
        return OcrResponse(request_id=request_id, status=STATUS_OK, card_type=doc.get("card_type"),
                           card_confidence=doc["card_confidence"], corners=doc["corners"], fields=fields,
                           timing_ms=timing)
    except (ValidationError, KeyError, TypeError):
        # never log or echo the validation error: it quotes the field values
        raise ApiError(502, "triton_error", "the inference server returned a malformed result") from None
