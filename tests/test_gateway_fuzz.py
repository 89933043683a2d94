"""Schemathesis fuzzes every operation of the gateway's OpenAPI schema against the live gateway (real
uvicorn, real Triton): each answer must be a documented status with a body and headers matching the
schema, and no 5xx but the documented ones (502/503/504, which a healthy Triton should not even cause).

Kept short for a 2-core machine: a few dozen generated requests per operation.
"""
from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (content_type_conformance, negative_data_rejection,
                                               response_headers_conformance, response_schema_conformance,
                                               status_code_conformance)

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = 30  # per operation and mode


OPERATIONS = [("POST", "/v1/ocr"), ("POST", "/v1/ocr/batch"), ("GET", "/healthz"), ("GET", "/readyz"),
              ("GET", "/metrics")]


@pytest.fixture(scope="module")
def gateway_schema(gateway_url: str):
    return schemathesis.openapi.from_url(f"{gateway_url}/openapi.json")


def no_undocumented_server_error(ctx, response, case) -> None:
    """A 5xx is a bug unless the operation documents it (Triton trouble); a 500 never is documented."""
    if response.status_code >= 500:
        documented = case.operation.definition.raw.get("responses", {})
        assert str(response.status_code) in documented, (
            f"undocumented {response.status_code} from {case.method} {case.path}: {response.text[:300]}")


CHECKS = [no_undocumented_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance, negative_data_rejection]


def test_the_fuzzed_operations_are_all_of_them(gateway_schema):
    assert sorted((op.ok().method.upper(), op.ok().path) for op in gateway_schema.get_all_operations()) == sorted(OPERATIONS)


# negative data needs something to break: only the POSTs take input
CASES = [(m, p, GenerationMode.POSITIVE) for m, p in OPERATIONS] + [
    (m, p, GenerationMode.NEGATIVE) for m, p in OPERATIONS if m == "POST"]


@pytest.mark.parametrize("method,path,mode", CASES)
def test_gateway_conforms_to_its_schema(gateway_schema, method, path, mode):
    """Hypothesis drives schemathesis' strategy for the operation (its pytest plugin does not run on pytest 9)."""
    operation = gateway_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    def fuzz(case) -> None:
        case.call_and_validate(checks=CHECKS, timeout=120)

    fuzz()
