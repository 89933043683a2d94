"""Response bodies (they are the OpenAPI schema). Built from the ensemble's RESULT JSON by `parse_result`."""
from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, model_validator

from fvi.schema import FIELDS, STATUS_NO_CARD, STATUS_OK
from gateway.errors import ApiError

Point = tuple[float, float]


class FieldValue(BaseModel):
    value: str = Field(description="normalised text; empty when the field was not read")
    confidence: float = Field(ge=0.0, le=1.0)


class ResultWarning(BaseModel):
    """A finding that does not stop the read: a card rule a value breaks, or a capture-quality problem.

    Mirrors fvi.schema.Warning; a RESULT with the older single `field` key is accepted too.
    """

    code: str = Field(description="machine code, e.g. blur, glare, cut_corner, small_card, low_light, "
                                  "field_missing, id_province_unknown, date_invalid")
    fields: list[str] = Field(description="the fields it concerns; empty for the whole card or photo")
    message: str = Field(description="what is wrong and what to do, for a person")

    @model_validator(mode="before")
    @classmethod
    def _single_field(cls, data: Any) -> Any:
        if isinstance(data, dict) and "fields" not in data and "field" in data:
            data = {**data, "fields": [data["field"]] if data["field"] else []}
        return data


class AnnotatedImage(BaseModel):
    media_type: Literal["image/jpeg"] = "image/jpeg"
    data_base64: str = Field(description="the photo with the corners, line boxes and read text drawn on it")


class Timing(BaseModel):
    inference: float = Field(description="round trip to the Triton ensemble (slowest image of a batch), ms")
    total: float = Field(description="from request received to response built, ms")


class CardResult(BaseModel):
    """What was read from one photo."""

    card_type: str | None = Field(description="the card's type and edition, e.g. cccd_chip_2021, cccd_2016, can_cuoc_2024")
    card_type_confidence: float = Field(default=0.0, ge=0.0, le=1.0, description="probability of card_type")
    card_confidence: float = Field(ge=0.0, le=1.0, description="that the photo shows a card at these corners")
    corners: list[Point] = Field(min_length=4, max_length=4, description="TL, TR, BR, BL in image pixels")
    fields: dict[str, FieldValue] = Field(description=f"always the keys {', '.join(FIELDS)}; a field the card type "
                                                      "does not print on its front is empty")
    warnings: list[ResultWarning] = Field(description="validation and photo-quality findings; empty when none")
    annotated_image: AnnotatedImage | None = Field(default=None, description="only with ?debug=1")


class OcrResponse(CardResult):
    request_id: str
    status: Literal["ok"]
    timing_ms: Timing


class ErrorBody(BaseModel):
    code: str = Field(description="stable machine code, e.g. corrupt_image, no_card, triton_unavailable")
    message: str = Field(description="what was wrong and what to do, for a person")


class ErrorResponse(BaseModel):
    error: ErrorBody
    request_id: str


class BatchItem(BaseModel):
    """One image of a batch, in upload order: either `result` or `error` is set."""

    index: int = Field(ge=0, description="position of the image in the upload")
    http_status: int = Field(description="the status POST /v1/ocr would have answered for this image alone")
    result: CardResult | None = None
    error: ErrorBody | None = None


class BatchResponse(BaseModel):
    request_id: str
    count: int = Field(ge=1)
    items: list[BatchItem]
    timing_ms: Timing


class HealthResponse(BaseModel):
    status: str


def parse_result(result: str | bytes) -> CardResult:
    """RESULT JSON -> CardResult; no card -> ApiError 422, malformed -> 502.

    Only the documented keys are copied (no raw line texts), and every field name is present so
    clients need no special case for a field the reader left empty. `warnings` is optional in the
    RESULT (older ensembles do not send it).
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
        return CardResult(card_type=doc.get("card_type"), card_type_confidence=doc.get("card_type_confidence", 0.0),
                          card_confidence=doc["card_confidence"],
                          corners=doc["corners"], fields=fields, warnings=doc.get("warnings") or [])
    except (ValidationError, KeyError, TypeError):
        # never log or echo the validation error: it quotes the field values
        raise ApiError(502, "triton_error", "the inference server returned a malformed result") from None


def build_response(result: str | bytes, request_id: str, timing: Timing) -> OcrResponse:
    """RESULT JSON -> the body of a successful POST /v1/ocr (errors as in `parse_result`)."""
    card = parse_result(result)
    return OcrResponse(request_id=request_id, status=STATUS_OK, timing_ms=timing, **dict(card))
