"""Prometheus metrics of one gateway app (GET /metrics). Labels are bounded: a route name, a status, an error code."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE  # noqa: F401 — re-exported for the route

# a card takes 50-500 ms on CPU; the tail reaches the request timeout (30 s) when Triton is saturated
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """Own registry per app, so several apps in one process (the tests) do not share counters."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("fvi_gateway_requests", "HTTP requests answered", ["route", "method", "status"],
                                registry=r)
        self.latency = Histogram("fvi_gateway_request_duration_seconds", "HTTP request latency, received to answered",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.errors = Counter("fvi_gateway_errors", "errors answered, by code (each failed image of a batch counts)",
                              ["code"], registry=r)
        self.in_flight = Gauge("fvi_gateway_requests_in_flight", "HTTP requests being handled", registry=r)
        self.triton_in_flight = Gauge("fvi_gateway_triton_calls_in_flight", "ensemble calls waiting for Triton",
                                      registry=r)
        self.triton_retries = Counter("fvi_gateway_triton_retries", "ensemble calls retried after a connection failure",
                                      registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
