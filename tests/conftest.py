"""Shared fixtures for end-to-end tests: the real tritonserver and the gateway as a real uvicorn process.

Both are session-scoped (Triton takes seconds to start); tests that use them are marked `e2e`.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from fvi.triton_launcher import REPO_ROOT, TritonServer, free_port


@dataclass
class GatewayProcess:
    url: str
    log_path: Path
    process: subprocess.Popen

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def start_gateway(triton_url: str, log_path: Path, timeout: float = 30.0, **env: str) -> GatewayProcess:
    """`uvicorn gateway.app:app_from_env --factory` on a free port, configured like a deployment (FVI_* env)."""
    port = free_port()
    environ = {**os.environ, "FVI_TRITON_URL": triton_url, **env}
    cmd = [sys.executable, "-m", "uvicorn", "gateway.app:app_from_env", "--factory", "--host", "127.0.0.1",
           "--port", str(port), "--loop", "asyncio", "--no-access-log"]
    with open(log_path, "ab") as log:
        process = subprocess.Popen(cmd, cwd=REPO_ROOT, env=environ, stdout=log, stderr=subprocess.STDOUT)
    gateway = GatewayProcess(f"http://127.0.0.1:{port}", log_path, process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the gateway exited with code {process.returncode}:\n{gateway.log_text()[-2000:]}")
        try:
            if httpx.get(f"{gateway.url}/healthz", timeout=1).status_code == 200:
                return gateway
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    stop_gateway(gateway)
    raise TimeoutError(f"the gateway did not answer /healthz within {timeout:.0f}s; see {log_path}")


def stop_gateway(gateway: GatewayProcess) -> None:
    gateway.process.terminate()
    try:
        gateway.process.wait(15)
    except subprocess.TimeoutExpired:
        gateway.process.kill()
        gateway.process.wait()


@pytest.fixture(scope="session")
def triton() -> Iterator[TritonServer]:
    """The real tritonserver on model_repository, on free ports."""
    server = TritonServer().start()
    try:
        yield server
    finally:
        server.stop()


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
