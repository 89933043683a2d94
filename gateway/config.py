"""Gateway settings, read once from the environment so deployments configure it without code."""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fvi.image_io import MAX_BYTES

DEFAULT_TRITON_URL = "127.0.0.1:8001"
DEFAULT_REQUEST_TIMEOUT_S = 30.0
MODEL_NAME = "fvi_ensemble"
# Connection failures (nothing was sent) are retried this many times, after CONNECT_RETRY_DELAY_S * attempt:
# long enough to ride out a gRPC reconnect, short enough that a stopped Triton still answers 503 quickly.
CONNECT_RETRIES = 2
CONNECT_RETRY_DELAY_S = 0.25


@dataclass(frozen=True)
class Settings:
    """What the gateway needs to know; the defaults match `make serve` (no API key, no CORS)."""

    triton_url: str = DEFAULT_TRITON_URL
    max_upload_bytes: int = MAX_BYTES  # per image; the shared core refuses more than this anyway
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S  # per ensemble call, queueing included
    model_name: str = MODEL_NAME
    max_batch_images: int = 8
    max_batch_bytes: int = 64 * 2**20  # the whole /v1/ocr/batch body
    max_in_flight: int = 8  # ensemble calls at once, for the whole process
    api_key: str | None = None  # None: no authentication (the embedded demo)
    cors_origins: tuple[str, ...] = ()  # empty: no CORS headers at all
    log_level: str = "INFO"
    ready_timeout_s: float = 2.0  # /readyz must answer fast even when Triton hangs
    retry_after_s: int = 5

    def __post_init__(self) -> None:
        for name in ("max_upload_bytes", "request_timeout_s", "max_batch_images", "max_batch_bytes", "max_in_flight"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.api_key is not None and len(self.api_key) < 16:
            raise ValueError("the API key must be at least 16 characters")
        if logging.getLevelName(self.log_level) not in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR):
            raise ValueError(f"log_level {self.log_level!r} is not DEBUG, INFO, WARNING or ERROR")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        """FVI_* variables (see README); unset or empty means the default."""
        env = os.environ if env is None else env

        def get(name: str, parse: Callable[[str], Any], default: Any) -> Any:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                return parse(raw)
            except ValueError:
                raise ValueError(f"{name}={raw!r} is not a valid {parse.__name__}") from None

        def origins(raw: str) -> tuple[str, ...]:
            return tuple(o.strip() for o in raw.split(",") if o.strip())

        return cls(
            triton_url=get("FVI_TRITON_URL", str, DEFAULT_TRITON_URL),
            max_upload_bytes=get("FVI_MAX_UPLOAD_BYTES", int, MAX_BYTES),
            request_timeout_s=get("FVI_REQUEST_TIMEOUT_S", float, DEFAULT_REQUEST_TIMEOUT_S),
            max_batch_images=get("FVI_MAX_BATCH_IMAGES", int, cls.max_batch_images),
            max_batch_bytes=get("FVI_MAX_BATCH_BYTES", int, cls.max_batch_bytes),
            max_in_flight=get("FVI_MAX_IN_FLIGHT", int, cls.max_in_flight),
            api_key=get("FVI_API_KEY", str, None),
            cors_origins=get("FVI_CORS_ORIGINS", origins, ()),
            log_level=get("FVI_LOG_LEVEL", str.upper, "INFO"),
        )
