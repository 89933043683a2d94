"""The gateway survives Triton going away and coming back: 503 + Retry-After while it is down, 200 again
after it restarts on the same ports, without restarting the gateway. Plus the short version of the load
test (bench/load_test.py), which does the same under concurrent traffic.

Each test starts its own tritonserver (the session one must not be stopped), on fixed ports.
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from bench.load_test import run_load_test
from fvi.synth.dataset import generate
from fvi.triton_launcher import TritonServer, free_port
from gateway.process import start_gateway, stop_gateway

pytestmark = pytest.mark.e2e

RECOVERY_S = 30  # Triton ready -> the gateway answers 200 again; in practice about a second


@pytest.fixture
def own_triton(tmp_path) -> Iterator[TritonServer]:
    server = TritonServer(http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(),
                          log_path=tmp_path / "tritonserver.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _errors(metrics_text: str, code: str) -> float:
    prefix = f'fvi_gateway_errors_total{{code="{code}"}} '
    return sum(float(line[len(prefix):]) for line in metrics_text.splitlines() if line.startswith(prefix))


def test_gateway_recovers_when_triton_restarts(own_triton: TritonServer, tmp_path):
    cards = [s.capture.jpeg for s in generate(count=6, seed=7)]
    gateway = start_gateway(own_triton.grpc_url, tmp_path / "gateway.log")
    try:
        with httpx.Client(base_url=gateway.url, timeout=120) as http:
            def ocr() -> httpx.Response:
                return http.post("/v1/ocr", content=card, headers={"Content-Type": "image/jpeg"})

            card = next((c for c in cards if http.post("/v1/ocr", content=c,
                                                      headers={"Content-Type": "image/jpeg"}).status_code == 200), None)
            assert card is not None, "no card of seed 7 was read before the restart"
            ports = (own_triton.http_port, own_triton.grpc_port, own_triton.metrics_port)

            own_triton.stop()
            started = time.monotonic()
            down = ocr()
            assert time.monotonic() - started < 5, "a stopped Triton must be answered quickly, not waited for"
            assert down.status_code == 503, down.text
            assert down.json()["error"]["code"] == "triton_unavailable"
            assert int(down.headers["retry-after"]) > 0
            batch = http.post("/v1/ocr/batch", files=[("images", ("a.jpg", card, "image/jpeg"))] * 2)
            assert batch.status_code == 503 and int(batch.headers["retry-after"]) > 0
            ready = http.get("/readyz")
            assert ready.status_code == 503 and "retry-after" in ready.headers
            assert http.get("/healthz").status_code == 200  # the gateway itself is alive

            own_triton.start()  # same ports: the gateway's channel reconnects by itself
            assert (own_triton.http_port, own_triton.grpc_port, own_triton.metrics_port) == ports
            back = time.monotonic()
            statuses = []
            while time.monotonic() - back < RECOVERY_S:
                r = ocr()
                statuses.append(r.status_code)
                if r.status_code == 200:
                    break
                assert r.status_code == 503, r.text
                time.sleep(0.2)
            assert statuses[-1] == 200, f"still {statuses[-1]} {RECOVERY_S} s after Triton was ready again"
            assert http.get("/readyz").status_code == 200
            assert gateway.process.poll() is None  # the same gateway process throughout
            assert _errors(http.get("/metrics").text, "triton_unavailable") >= 2
    finally:
        stop_gateway(gateway)


def test_short_load_run_with_a_triton_restart(tmp_path):
    """bench/load_test.py for 20 s at concurrency 4: every request answered, only 503s, and only during the outage."""
    report = run_load_test(duration_s=20, concurrency=4, restart_at=0.3, down_s=2, out=tmp_path / "reports",
                           work=tmp_path / "work", max_in_flight=4)
    s = report["summary"]
    assert s["passed"], s["violations"]
    assert s["requests"]["unanswered"] == 0 and s["requests"]["sent"] == s["requests"]["answered"] > 0
    assert not [status for status in s["by_status"] if status.startswith("5") and status != "503"]
    assert s["phases"]["before"]["by_status"].get("200", 0) > 0
    assert s["phases"]["after"]["by_status"].get("200", 0) > 0
    assert s["by_status"].get("503", 0) > 0, "no 503 at all: was Triton really stopped during the run?"
    assert s["latency_ms"]["ok_200"]["p50"] > 0
    written = json.loads((tmp_path / "reports" / "load_test.json").read_text())
    assert written["summary"] == s
    assert "PASSED" in (tmp_path / "reports" / "load_test.md").read_text()
