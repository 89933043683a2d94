"""`python -m gateway.serve` (`make serve`): the embedded tritonserver plus the gateway, as one job.

Starts Triton on the repository's model_repository (TRITON_HTTP_PORT/TRITON_GRPC_PORT/TRITON_METRICS_PORT,
default 8000/8001/8002), then uvicorn with the gateway on FVI_GATEWAY_HOST:FVI_GATEWAY_PORT (default
0.0.0.0:8080). Ctrl-C or SIGTERM stops uvicorn gracefully, then Triton; if Triton dies, the gateway
stops too, so a supervisor sees one failed job instead of a gateway answering 503 forever.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from dataclasses import asdict, replace

import uvicorn

from fvi.triton_launcher import TritonServer
from gateway.app import configure_logging, create_app
from gateway.config import Settings


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    try:
        return int(raw) if raw else default
    except ValueError:
        sys.exit(f"{name}={raw!r} is not a port number")


def _say(message: str, stream=None) -> None:
    """Print, but never let a closed stdout (a gone supervisor pipe) skip stopping Triton."""
    try:
        print(message, file=stream or sys.stdout, flush=True)
    except (OSError, ValueError):
        pass


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM takes the same clean path as Ctrl-C


def _watch(server: uvicorn.Server, triton: TritonServer, host: str, port: int, failed: threading.Event) -> None:
    """Announce the gateway once uvicorn listens; stop uvicorn if Triton exits underneath it."""
    while not server.started and not server.should_exit:
        time.sleep(0.1)
    if server.started:
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        _say(f"FVI gateway listening on http://{host}:{port} (Triton gRPC {triton.grpc_url}); "
             f"try: curl -F image=@card.jpg http://{shown}:{port}/v1/ocr")
    while not server.should_exit:
        process = triton.process
        if process is None or process.poll() is not None:
            _say(f"tritonserver exited; stopping the gateway (see {triton.log_path})", sys.stderr)
            failed.set()
            server.should_exit = True
        time.sleep(1.0)


def main() -> None:
    try:
        settings = Settings.from_env()
    except ValueError as e:
        sys.exit(str(e))
    configure_logging(settings.log_level)
    host = os.environ.get("FVI_GATEWAY_HOST", "").strip() or "0.0.0.0"
    port = _env_int("FVI_GATEWAY_PORT", 8080)
    triton = TritonServer(http_port=_env_int("TRITON_HTTP_PORT", 8000), grpc_port=_env_int("TRITON_GRPC_PORT", 8001),
                          metrics_port=_env_int("TRITON_METRICS_PORT", 8002))
    failed = threading.Event()
    # uvicorn handles SIGTERM while it runs and re-raises it after shutting down; this handler turns that
    # (and a SIGTERM during Triton's startup) into KeyboardInterrupt, so the finally below stops Triton.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        _say(f"starting tritonserver (gRPC :{triton.grpc_port}, HTTP :{triton.http_port}, "
             f"metrics :{triton.metrics_port}) ...")
        triton.start()
        app = create_app(**asdict(replace(settings, triton_url=triton.grpc_url)))
        # access_log off: the gateway logs its own privacy-safe line per request
        server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, loop="asyncio", access_log=False,
                                               log_level="info", timeout_graceful_shutdown=10))
        threading.Thread(target=_watch, args=(server, triton, host, port, failed), daemon=True).start()
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C must not abandon Triton half-stopped
            signal.signal(sig, signal.SIG_IGN)
        _say("stopping tritonserver ...")
        triton.stop()
    if failed.is_set():
        sys.exit(1)


if __name__ == "__main__":
    main()
