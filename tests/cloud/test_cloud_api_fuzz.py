"""Property-based fuzzing of the REST API from its own OpenAPI document (schemathesis).

Every operation gets generated requests, valid and not, each sent with an
admin token (which reaches every route) and with a member's (the 403s and the
project scoping): no answer may be a 5xx, and every answer must match what
the document says for its status code, the error bodies included.

Examples per operation: ``PODIUM_API_FUZZ_EXAMPLES`` (default 15, a run of
well under a minute on two cores).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance
from tests.cloud.conftest import Spine, cloud_config

from podium.cloud import states
from podium.cloud.api import create_app
from podium.cloud.objects import ComputeNode, Instance
from podium.rpc import get_transport

EXAMPLES = int(os.environ.get("PODIUM_API_FUZZ_EXAMPLES", "15"))
TOKENS = "fuzz-admin=admin:admin-project:admin;fuzz-member=member:admin-project:member"


def _document() -> dict[str, object]:
    # The document does not depend on the bus or the database: an app built
    # for it alone gives the operations at collection time, and each test
    # then sends them to an app on a spine of its own.
    with get_transport("memory://api-fuzz-document") as transport:
        return create_app(cloud_config(), transport).openapi()


schema = schemathesis.openapi.from_dict(_document())


@pytest.fixture
def api(spine: Spine) -> Iterator[FastAPI]:
    # Something to find: a server on a host, and that host's node, in the
    # project both tokens belong to.
    ComputeNode.report(spine.admin, "compute-1", 4, 8192, 100)
    Instance(
        spine.admin,
        display_name="fuzz",
        project_id="admin-project",
        user_id="admin",
        host="compute-1",
        vm_state=states.ACTIVE,
        power_state=states.RUNNING,
    ).create()
    # No rate limit: the fuzzer asks far faster than any client should.
    yield create_app(cloud_config(api_tokens=TOKENS, api_rate_limit=0), spine.transport)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    # One spine per operation: the examples of an operation share its database.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_api_from_its_openapi_document(case: schemathesis.Case, api: FastAPI) -> None:
    for token in ("fuzz-admin", "fuzz-member"):
        case.call_and_validate(
            app=api,
            headers={"X-Auth-Token": token},
            checks=[not_a_server_error, response_schema_conformance],
        )
