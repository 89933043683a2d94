"""Load test of the gateway with a Triton restart in the middle: is every request answered, and only by 503 while Triton is down?

    python -m bench.load_test [--duration 600] [--concurrency 16] [--restart-at 0.5] [--down 5] [--out reports]

Starts its own tritonserver (fixed ports, so the restarted server is where the gateway's channel
points) and the gateway as a uvicorn process, then runs `concurrency` clients (httpx, asyncio), each
sending photographed synthetic cards to POST /v1/ocr back to back for `duration` seconds. At
`restart-at` of the run Triton is stopped, left down for `down` seconds and started again on the same
ports; the gateway is not touched. The run goes on past `duration` when needed, so that at least
MIN_AFTER_S seconds of traffic follow the recovery. A client that gets a 503 waits RETRY_PAUSE_S (a real client
honours Retry-After; this one only avoids spinning).

Passes when: no request went unanswered (transport error or client timeout), no 5xx other than 503,
no 503 outside the outage window (stop begun .. Triton ready + RECOVERY_GRACE_S), and 200s came
back after the restart. Writes <out>/load_test.json and <out>/load_test.md; exit code 1 when it fails.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import httpx
import numpy as np

from fvi.synth.dataset import generate
from fvi.triton_launcher import REPO_ROOT, RUN_DIR, TritonServer, free_port
from gateway.process import start_gateway, stop_gateway

LOAD_SEED = 9300  # not a training (1, 2), test (4242+) or bench (9100) seed
CARDS = 12
CLIENT_TIMEOUT_S = 90.0  # far above the gateway's own 30 s request timeout: a client timeout is a lost answer
RETRY_PAUSE_S = 0.2
RECOVERY_GRACE_S = 5.0  # gRPC reconnect backoff (<= 1 s) + connection retries + requests already queued
MIN_AFTER_S = 5.0  # the run goes on past --duration if needed, so that much traffic follows the grace period
HARD_EXTRA_S = 300.0  # but never longer than this past --duration (Triton's own start-up timeout is 180 s)


@dataclass
class Record:
    start: float  # seconds since the run began
    latency: float  # seconds
    status: int  # HTTP status; 0 = no answer
    code: str  # error code of the JSON body, "ok", or the exception type when unanswered


@dataclass
class Outage:
    stop_begun: float = 0.0
    stopped: float = 0.0
    start_begun: float = 0.0
    ready: float = 0.0
    failed: str = ""  # why Triton did not come back


def _code(response: httpx.Response) -> str:
    if response.status_code == 200:
        return "ok"
    try:
        return response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return "unparsable"


def _go_on(t0: float, end: float, outage: Outage) -> bool:
    """Until `end`, and in any case until MIN_AFTER_S of traffic have followed the recovery grace."""
    now = time.monotonic()
    if now < end:
        return True
    if outage.failed or now > end + HARD_EXTRA_S:
        return False
    return not outage.ready or now - t0 < outage.ready + RECOVERY_GRACE_S + MIN_AFTER_S


async def _client(http: httpx.AsyncClient, cards: list[bytes], offset: int, t0: float, end: float, outage: Outage,
                  records: list[Record]) -> None:
    i = offset
    while _go_on(t0, end, outage):
        data = cards[i % len(cards)]
        i += 1
        start = time.monotonic()
        try:
            r = await http.post("/v1/ocr", content=data, headers={"Content-Type": "image/jpeg"})
            records.append(Record(start - t0, time.monotonic() - start, r.status_code, _code(r)))
            if r.status_code == 503:
                await asyncio.sleep(RETRY_PAUSE_S)
        except httpx.HTTPError as exc:
            records.append(Record(start - t0, time.monotonic() - start, 0, type(exc).__name__))


async def _restart(triton: TritonServer, t0: float, at: float, down_s: float, outage: Outage) -> None:
    await asyncio.sleep(max(0.0, t0 + at - time.monotonic()))
    outage.stop_begun = time.monotonic() - t0
    await asyncio.to_thread(triton.stop)
    outage.stopped = time.monotonic() - t0
    await asyncio.sleep(down_s)
    outage.start_begun = time.monotonic() - t0
    try:
        await asyncio.to_thread(triton.start)  # blocks until fvi_ensemble is ready again
    except (RuntimeError, TimeoutError, OSError) as exc:
        outage.failed = f"{type(exc).__name__}: {exc}"
        return
    outage.ready = time.monotonic() - t0


async def _drive(url: str, triton: TritonServer, cards: list[bytes], duration_s: float, concurrency: int,
                 restart_at: float, down_s: float) -> tuple[list[Record], Outage, float]:
    records: list[Record] = []
    outage = Outage()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=CLIENT_TIMEOUT_S, limits=limits) as http:
        t0 = time.monotonic()
        end = t0 + duration_s
        restart = asyncio.create_task(_restart(triton, t0, restart_at * duration_s, down_s, outage))
        await asyncio.gather(*(_client(http, cards, k, t0, end, outage, records) for k in range(concurrency)))
        await restart
        elapsed = time.monotonic() - t0
    return records, outage, elapsed


def _percentiles(latencies: Sequence[float]) -> dict[str, float | None]:
    if not latencies:
        return {k: None for k in ("p50", "p90", "p99", "max", "mean")}
    ms = np.asarray(latencies) * 1000
    return {"p50": round(float(np.percentile(ms, 50)), 1), "p90": round(float(np.percentile(ms, 90)), 1),
            "p99": round(float(np.percentile(ms, 99)), 1), "max": round(float(ms.max()), 1),
            "mean": round(float(ms.mean()), 1)}


def summarise(records: list[Record], outage: Outage, elapsed: float) -> dict[str, Any]:
    """Counts, latencies, per-phase figures and the pass/fail verdict with its reasons."""
    window = (outage.stop_begun, (outage.ready or elapsed) + RECOVERY_GRACE_S)

    def in_outage(r: Record) -> bool:  # the request overlapped the window
        return r.start <= window[1] and r.start + r.latency >= window[0]

    answered = [r for r in records if r.status]
    phases = {
        "before": [r for r in records if r.start + r.latency < outage.stop_begun],
        "outage": [r for r in records if in_outage(r)],
        "after": [r for r in records if r.start > window[1]],
    }
    violations = [f"Triton did not restart: {outage.failed}"] if outage.failed else []
    unanswered = [r for r in records if not r.status]
    if unanswered:
        violations.append(f"{len(unanswered)} request(s) unanswered: {dict(Counter(r.code for r in unanswered))}")
    bad_5xx = Counter(r.status for r in answered if r.status >= 500 and r.status != 503)
    if bad_5xx:
        violations.append(f"5xx other than 503: {dict(bad_5xx)}")
    stray_503 = [r for r in answered if r.status == 503 and not in_outage(r)]
    if stray_503:
        violations.append(f"{len(stray_503)} 503(s) outside the outage window")
    if not any(r.status == 200 for r in phases["after"]):
        violations.append("no 200 after the restart: the gateway did not recover")
    if not any(r.status == 200 for r in phases["before"]):
        violations.append("no 200 before the restart: the run never worked")
    ok = [r for r in answered if r.status == 200]
    return {
        "elapsed_s": round(elapsed, 1),
        "outage": {k: round(v, 2) if isinstance(v, float) else v for k, v in asdict(outage).items()},
        "outage_window_s": [round(window[0], 2), round(window[1], 2)],
        "requests": {"sent": len(records), "answered": len(answered), "unanswered": len(unanswered)},
        "by_status": {str(k): v for k, v in sorted(Counter(r.status for r in records).items())},
        "by_code": dict(sorted(Counter(r.code for r in records).items())),
        "latency_ms": {"all_answered": _percentiles([r.latency for r in answered]),
                       "ok_200": _percentiles([r.latency for r in ok])},
        "phases": {name: {"requests": len(rs), "by_status": {str(k): v for k, v in sorted(Counter(r.status for r in rs).items())},
                          "latency_ms_200": _percentiles([r.latency for r in rs if r.status == 200])}
                   for name, rs in phases.items()},
        "throughput_ok_per_s": round(len(ok) / elapsed, 2) if elapsed else None,
        "violations": violations,
        "passed": not violations,
    }


def _git_rev() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO_ROOT, capture_output=True, text=True,
                               timeout=10).stdout.strip()
        return f"{rev}{' (uncommitted changes)' if dirty else ''}" or "unknown"
    except OSError:
        return "unknown"


def write_report(report: dict[str, Any], out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "load_test.json", out / "load_test.md"
    json_path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    c, s = report["config"], report["summary"]
    lat = s["latency_ms"]

    def row(name: str, p: dict[str, float | None]) -> str:
        return f"| {name} | " + " | ".join("-" if p[k] is None else f"{p[k]:.0f}" for k in ("p50", "p90", "p99", "max")) + " |"

    lines = [
        "# Gateway load test with a Triton restart",
        "",
        f"Generated {report['generated']} by `{report['command']}` (git {report['git']}).",
        f"Machine: {report['machine']['nproc']} cores, load average at start {report['machine']['loadavg_start']}, "
        f"python {report['machine']['python']}.",
        "",
        f"**{'PASSED' if s['passed'] else 'FAILED'}**" + ("" if s["passed"] else ": " + "; ".join(s["violations"])),
        "",
        "## Run",
        "",
        f"{c['concurrency']} clients for {c['duration_s']:.0f} s (ran {s['elapsed_s']} s), each sending one of "
        f"{c['cards']} photographed synthetic cards (seed {c['seed']}) to `POST /v1/ocr` back to back. "
        f"Gateway: max {c['gateway']['FVI_MAX_IN_FLIGHT']} ensemble calls in flight, "
        f"{c['gateway']['FVI_REQUEST_TIMEOUT_S']} s request timeout.",
        "",
        f"Triton stopped at {s['outage']['stop_begun']} s (down at {s['outage']['stopped']} s), started again at "
        f"{s['outage']['start_begun']} s, ready at {s['outage']['ready']} s on the same ports; the gateway was "
        f"not restarted. 503s count as expected between {s['outage_window_s'][0]} s and {s['outage_window_s'][1]} s "
        f"(ready + {RECOVERY_GRACE_S:.0f} s).",
        "",
        "## Requests",
        "",
        "| sent | answered | unanswered | 200 per second |",
        "|---|---|---|---|",
        f"| {s['requests']['sent']} | {s['requests']['answered']} | {s['requests']['unanswered']} | "
        f"{s['throughput_ok_per_s']} |",
        "",
        "| status | count |",
        "|---|---|",
        *[f"| {k if k != '0' else 'no answer'} | {v} |" for k, v in s["by_status"].items()],
        "",
        "| code | count |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in s["by_code"].items()],
        "",
        "## Latency (ms, client side)",
        "",
        "| requests | p50 | p90 | p99 | max |",
        "|---|---|---|---|---|",
        row("all answered", lat["all_answered"]),
        row("200 only", lat["ok_200"]),
        *[row(f"200, {name} the outage" if name != "outage" else "200, during the outage", p["latency_ms_200"])
          for name, p in s["phases"].items()],
        "",
        "## By phase",
        "",
        "| phase | requests | by status |",
        "|---|---|---|",
        *[f"| {name} | {p['requests']} | {', '.join(f'{k}: {v}' for k, v in p['by_status'].items()) or '-'} |"
          for name, p in s["phases"].items()],
        "",
    ]
    md_path.write_text("\n".join(lines), encoding="utf-8")
    return json_path, md_path


def run_load_test(duration_s: float, concurrency: int, restart_at: float = 0.5, down_s: float = 5.0,
                  out: Path = REPO_ROOT / "reports", work: Path = RUN_DIR / "load_test", max_in_flight: int = 8,
                  command: str = "") -> dict[str, Any]:
    """Start Triton and the gateway, run the load with the restart, stop both; returns the report (also written)."""
    if not 0 < restart_at < 1:
        raise ValueError("restart_at must be between 0 and 1 (a fraction of the duration)")
    loadavg_start = os.getloadavg()
    cards = [s.capture.jpeg for s in generate(count=CARDS, seed=LOAD_SEED)]
    gateway_env = {"FVI_MAX_IN_FLIGHT": str(max_in_flight), "FVI_REQUEST_TIMEOUT_S": "30"}
    triton = TritonServer(http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(),
                          log_path=work / "tritonserver.log")
    triton.start()
    try:
        gateway = start_gateway(triton.grpc_url, work / "gateway.log", **gateway_env)
        try:
            records, outage, elapsed = asyncio.run(
                _drive(gateway.url, triton, cards, duration_s, concurrency, restart_at, down_s))
            gateway_alive = gateway.process.poll() is None
        finally:
            stop_gateway(gateway)
    finally:
        triton.stop()
    summary = summarise(records, outage, elapsed)
    if not gateway_alive:
        summary["violations"].append("the gateway process died during the run")
        summary["passed"] = False
    report = {
        "generated": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command or f"python -m bench.load_test --duration {duration_s:g} --concurrency {concurrency}",
        "git": _git_rev(),
        "machine": {"nproc": os.cpu_count(), "loadavg_start": [round(x, 2) for x in loadavg_start],
                    "loadavg_end": [round(x, 2) for x in os.getloadavg()], "python": platform.python_version()},
        "config": {"duration_s": duration_s, "concurrency": concurrency, "restart_at": restart_at, "down_s": down_s,
                   "cards": CARDS, "seed": LOAD_SEED, "client_timeout_s": CLIENT_TIMEOUT_S,
                   "retry_pause_s": RETRY_PAUSE_S, "gateway": gateway_env, "logs": str(work)},
        "summary": summary,
    }
    write_report(report, out)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.load_test", description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=600.0, help="seconds of load (default %(default)s)")
    ap.add_argument("--concurrency", type=int, default=16, help="clients sending back to back (default %(default)s)")
    ap.add_argument("--restart-at", type=float, default=0.5, help="when to stop Triton, as a fraction of the run")
    ap.add_argument("--down", type=float, default=5.0, help="seconds Triton stays down (default %(default)s)")
    ap.add_argument("--max-in-flight", type=int, default=8, help="the gateway's FVI_MAX_IN_FLIGHT (default %(default)s)")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "reports", help="folder of load_test.md/.json")
    a = ap.parse_args(argv)
    if a.duration <= 0 or a.concurrency <= 0 or a.down < 0:
        ap.error("--duration and --concurrency must be positive, --down not negative")
    command = "python -m bench.load_test " + " ".join(sys.argv[1:] if argv is None else argv)
    report = run_load_test(a.duration, a.concurrency, a.restart_at, a.down, a.out, max_in_flight=a.max_in_flight,
                           command=command.strip())
    s = report["summary"]
    print(f"load test {'PASSED' if s['passed'] else 'FAILED'}: sent {s['requests']['sent']}, answered "
          f"{s['requests']['answered']}, by status {s['by_status']}, 200 latency {s['latency_ms']['ok_200']}; "
          f"report {a.out / 'load_test.md'}", flush=True)
    for v in s["violations"]:
        print(f"  - {v}", file=sys.stderr)
    return 0 if s["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
