"""Shared fixtures for end-to-end tests: the real tritonserver and the gateway as a real uvicorn process.

Both are session-scoped (Triton takes seconds to start); tests that use them are marked `e2e`.
Triton runs with --log-verbose=1 and logs to its own file, so the privacy test can read everything
it logged during the session.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fvi.triton_launcher import TritonServer
from gateway.process import GatewayProcess, start_gateway, stop_gateway


@pytest.fixture(scope="session")
def triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    """The real tritonserver on model_repository, on free ports."""
    log = tmp_path_factory.mktemp("triton") / "tritonserver.log"
    server = TritonServer(log_path=log, extra_args=["--log-verbose=1"]).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def triton_log(triton: TritonServer) -> Path:
    return triton.log_path


@pytest.fixture(scope="session")
def gateway_process(triton: TritonServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """The gateway process in front of `triton`, with its log file (for the privacy test)."""
    g = start_gateway(triton.grpc_url, tmp_path_factory.mktemp("gateway") / "gateway.log")
    try:
        yield g
    finally:
        stop_gateway(g)


@pytest.fixture(scope="session")
def gateway_url(gateway_process: GatewayProcess) -> str:
    """Base URL of the running gateway, e.g. http://127.0.0.1:PORT."""
    return gateway_process.url
