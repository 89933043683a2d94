"""The gateway as its own uvicorn process, configured like a deployment (FVI_* env): for tests and the load test."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from fvi.triton_launcher import REPO_ROOT, free_port


@dataclass
class GatewayProcess:
    url: str
    log_path: Path
    process: subprocess.Popen

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def start_gateway(triton_url: str, log_path: Path, timeout: float = 30.0, cwd: Path | None = None,
                  uvicorn_log_level: str = "info", **env: str) -> GatewayProcess:
    """`uvicorn gateway.app:app_from_env --factory` on a free port; returns once /healthz answers.

    stdout and stderr go to `log_path` (appended). `cwd` defaults to the repository; the app is
    imported from the repository either way.
    """
    port = free_port()
    environ = {**os.environ, "FVI_TRITON_URL": triton_url, **env}
    cmd = [sys.executable, "-m", "uvicorn", "gateway.app:app_from_env", "--factory", "--app-dir", str(REPO_ROOT),
           "--host", "127.0.0.1", "--port", str(port), "--loop", "asyncio", "--no-access-log",
           "--log-level", uvicorn_log_level]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(cmd, cwd=cwd or REPO_ROOT, env=environ, stdout=log, stderr=subprocess.STDOUT)
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
    """SIGTERM (uvicorn finishes what it is answering), SIGKILL after 15 s."""
    gateway.process.terminate()
    try:
        gateway.process.wait(15)
    except subprocess.TimeoutExpired:
        gateway.process.kill()
        gateway.process.wait()
