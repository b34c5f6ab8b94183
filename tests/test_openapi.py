"""The OpenAPI schema says what the server does: schemathesis, run as a user would run it
(`st run --checks all` from this directory, every phase, with schemathesis.toml), against
gunicorn with a (fake) Kubernetes API, finds nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from tests.support.gunicorn import ROOT, run_server

pytestmark = pytest.mark.e2e


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


def test_a_schemathesis_run_with_every_check_finds_nothing(live, tmp_path):
    report = tmp_path / "report"
    st = Path(sys.executable).with_name("st")
    run = subprocess.run(
        [
            *(str(st), "run", f"{live.url}/api/schema", "--checks", "all"),
            *("-H", f"Authorization: Bearer {live.token}"),
            # One worker: two threads that first describe Hypothesis's filters at the same
            # moment both parse a module's source, and CPython 3.11's ast.parse is not
            # thread-safe ("AST constructor recursion depth mismatch", an errored case).
            *("--max-examples", "30", "--workers", "1", "--seed", "20261201"),
            *("--report", "junit", "--report-dir", str(report)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    summary = run.stdout[run.stdout.find("SUMMARY") :]
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-4000:]
    assert "Tested:" in summary and "Errored" not in summary, summary


def test_the_schema_documents_every_route_and_each_operation_on_its_own(live):
    answer = live.request(
        "GET", "/api/schema", headers={"Accept": "application/vnd.oai.openapi+json"}
    )
    schema = json.loads(answer.text)
    paths = schema["paths"]
    assert {"/metrics", "/d/{path_token}/config/{device_id}", "/devices/{device_id}/ip"} <= set(
        paths
    )
    descriptions = [
        operation.get("description", "")
        for methods in paths.values()
        for operation in methods.values()
    ]
    assert all(descriptions), "an operation without a description"
    assert len(set(descriptions)) == len(descriptions), "operations sharing one description"
