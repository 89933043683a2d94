"""The gateway's one connection to Triton: a grpc.aio client for the process, bounded in-flight calls,
retries only where nothing was sent, and Triton failures turned into ApiErrors.
"""
from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.grpc.aio import InferenceServerClient
from tritonclient.utils import InferenceServerException

from gateway.config import CONNECT_RETRIES, CONNECT_RETRY_DELAY_S, Settings
from gateway.errors import ApiError, from_triton, unavailable
from gateway.metrics import Metrics

# gRPC's wording when no connection could be made, so the request never left the gateway: safe to resend.
# Anything else (a reset mid-call, a deadline, a server error) may have reached Triton and is not retried.
_NOT_SENT = re.compile(r"failed to connect to all addresses|connection refused|DNS resolution failed", re.I)


def _channel_args() -> list[tuple[str, int]]:
    """tritonclient's defaults, plus a short reconnect backoff so a restarted Triton is used within a second."""
    keepalive = grpcclient.KeepAliveOptions()
    return [
        ("grpc.max_send_message_length", grpcclient.MAX_GRPC_MESSAGE_SIZE),
        ("grpc.max_receive_message_length", grpcclient.MAX_GRPC_MESSAGE_SIZE),
        ("grpc.keepalive_time_ms", keepalive.keepalive_time_ms),
        ("grpc.keepalive_timeout_ms", keepalive.keepalive_timeout_ms),
        ("grpc.keepalive_permit_without_calls", int(keepalive.keepalive_permit_without_calls)),
        ("grpc.http2.max_pings_without_data", keepalive.http2_max_pings_without_data),
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", 1000),
    ]


def not_sent(exc: InferenceServerException) -> bool:
    """True when the call failed before reaching Triton (connection refused), the only failure retried."""
    return (exc.status() or "").endswith("UNAVAILABLE") and bool(_NOT_SENT.search(exc.message() or ""))


@dataclass
class EnsembleOutput:
    result: bytes  # the RESULT JSON (fvi.schema.OcrResult)
    corners: np.ndarray | None = None  # 4 x 2, only when asked for (debug)
    line_meta: np.ndarray | None = None  # N x LINE_META_COLUMNS (fvi.schema), only when asked for (debug)

    def result_dict(self) -> dict:
        return json.loads(self.result)


class Ensemble:
    """Created inside the server's event loop (grpc.aio binds to it); `close()` at shutdown."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.client = InferenceServerClient(settings.triton_url, channel_args=_channel_args())
        self.slots = asyncio.Semaphore(settings.max_in_flight)

    async def close(self) -> None:
        await self.client.close()

    async def infer(self, data: bytes, request_id: str, with_geometry: bool = False) -> EnsembleOutput:
        """One photo through the ensemble within the request timeout (waiting for a free slot included)."""
        s = self.settings
        loop = asyncio.get_running_loop()
        deadline = loop.time() + s.request_timeout_s
        try:
            async with asyncio.timeout(s.request_timeout_s):
                await self.slots.acquire()
        except TimeoutError:
            raise unavailable("the gateway is at its limit of requests to the inference server; retry later",
                              s.retry_after_s, code="overloaded") from None
        self.metrics.triton_in_flight.inc()
        try:
            return await self._call(data, request_id, with_geometry, deadline)
        finally:
            self.metrics.triton_in_flight.dec()
            self.slots.release()

    async def _call(self, data: bytes, request_id: str, with_geometry: bool, deadline: float) -> EnsembleOutput:
        s = self.settings
        loop = asyncio.get_running_loop()
        names = ("RESULT", "CORNERS", "LINE_META") if with_geometry else ("RESULT",)
        for attempt in range(CONNECT_RETRIES + 1):
            image = grpcclient.InferInput("IMAGE", [1], "BYTES")
            image.set_data_from_numpy(np.array([data], dtype=np.object_))
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ApiError(504, "triton_timeout", "the inference server did not answer in time; retry later")
            try:
                result = await self.client.infer(s.model_name, [image],
                                                 outputs=[grpcclient.InferRequestedOutput(n) for n in names],
                                                 request_id=request_id, client_timeout=remaining)
                break
            except InferenceServerException as exc:
                delay = CONNECT_RETRY_DELAY_S * (attempt + 1)
                if attempt < CONNECT_RETRIES and not_sent(exc) and deadline - loop.time() > delay:
                    self.metrics.triton_retries.inc()
                    await asyncio.sleep(delay)
                    continue
                raise from_triton(exc, s.retry_after_s) from None
        out = result.as_numpy("RESULT")
        if out is None or out.size != 1:
            raise ApiError(502, "triton_error", "the inference server returned no result")
        if not with_geometry:
            return EnsembleOutput(out.reshape(-1)[0])
        return EnsembleOutput(out.reshape(-1)[0], result.as_numpy("CORNERS"), result.as_numpy("LINE_META"))

    async def ready(self) -> tuple[bool, bool]:
        """(server live, model ready), each False when Triton cannot be reached within ready_timeout_s."""
        s = self.settings
        try:
            live = await self.client.is_server_live(client_timeout=s.ready_timeout_s)
            ready = live and await self.client.is_model_ready(s.model_name, client_timeout=s.ready_timeout_s)
        except InferenceServerException:
            return False, False
        return live, ready
