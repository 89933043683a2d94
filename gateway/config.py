"""Gateway settings, read once from the environment so deployments configure it without code."""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from fvi.image_io import MAX_BYTES

DEFAULT_TRITON_URL = "127.0.0.1:8001"
DEFAULT_REQUEST_TIMEOUT_S = 30.0
MODEL_NAME = "fvi_ensemble"


@dataclass(frozen=True)
class Settings:
    """What the gateway needs to know; the defaults match `make serve`."""

    triton_url: str = DEFAULT_TRITON_URL
    max_upload_bytes: int = MAX_BYTES  # the shared core refuses more than this anyway
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S
    model_name: str = MODEL_NAME
    ready_timeout_s: float = 2.0  # /readyz must answer fast even when Triton hangs
    retry_after_s: int = 5

    def __post_init__(self) -> None:
        if self.max_upload_bytes <= 0:
            raise ValueError("max_upload_bytes must be positive")
        if self.request_timeout_s <= 0:
            raise ValueError("request_timeout_s must be positive")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        """FVI_TRITON_URL, FVI_MAX_UPLOAD_BYTES, FVI_REQUEST_TIMEOUT_S; unset or empty means the default."""
        env = os.environ if env is None else env

        def get(name: str, parse, default):
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                return parse(raw)
            except ValueError:
                raise ValueError(f"{name}={raw!r} is not a valid {parse.__name__}") from None

        return cls(
            triton_url=get("FVI_TRITON_URL", str, DEFAULT_TRITON_URL),
            max_upload_bytes=get("FVI_MAX_UPLOAD_BYTES", int, MAX_BYTES),
            request_timeout_s=get("FVI_REQUEST_TIMEOUT_S", float, DEFAULT_REQUEST_TIMEOUT_S),
        )
