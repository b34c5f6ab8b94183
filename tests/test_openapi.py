"""The OpenAPI schema describes every route truthfully: schemathesis drives a real gunicorn
process with generated requests and checks each answer against the schema."""

from __future__ import annotations

import pytest
import schemathesis
from django.core.management import call_command
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.gunicorn import run_server

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def test_schema_generates_without_warnings(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "s.yaml"))


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """The server, with a (fake) Kubernetes API: without one the Kubernetes routes answer
    the contract's 503, which is tested on its own."""
    from tests.support.kube_api import serve

    workdir = tmp_path_factory.mktemp("schemathesis")
    with serve() as kube:
        kubeconfig = kube.write_kubeconfig(workdir / "kubeconfig")
        with run_server(workdir, env={"KUBECONFIG": str(kubeconfig)}) as server:
            yield server


@pytest.fixture(scope="module")
def api_schema(live):
    return schemathesis.openapi.from_url(f"{live.url}/api/schema")


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.mark.e2e
@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_every_route_answers_as_documented(case, live):
    case.call_and_validate(
        base_url=live.url,
        headers={"Authorization": f"Bearer {live.token}"},
        checks=CHECKS,
        timeout=30,
    )
