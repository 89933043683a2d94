"""Optional API-key check: off when no key is configured (the embedded demo), on for every OCR route otherwise."""
from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from fastapi import Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from gateway.errors import ApiError

_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="the gateway's API key")
_bearer = HTTPBearer(auto_error=False, description="the gateway's API key as a bearer token")


def require_api_key(expected: str) -> Callable[..., Awaitable[None]]:
    """A FastAPI dependency accepting `X-API-Key: <key>` or `Authorization: Bearer <key>`.

    The comparison is constant-time (hmac.compare_digest), so response timing tells nothing about
    how much of a guessed key was right. The key is never logged.
    """
    want = expected.encode("utf-8")

    async def check(header_key: str | None = Security(_header),
                    bearer: HTTPAuthorizationCredentials | None = Security(_bearer)) -> None:
        given = header_key if header_key is not None else (bearer.credentials if bearer is not None else None)
        challenge = {"WWW-Authenticate": 'Bearer realm="fvi"'}
        if not given:
            raise ApiError(401, "unauthorized", "send the API key in the X-API-Key header or as "
                                                "'Authorization: Bearer <key>'", challenge)
        if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), want):
            raise ApiError(401, "unauthorized", "the API key is not valid", challenge)

    return check
