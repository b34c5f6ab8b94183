"""The exporter's `GET /config/{id}` answered ahead of Django (devices.api.hotpath): only
when the answer is certain, and then exactly Django's answer."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import requests

from devices.api.hotpath import MIRRORED_MIDDLEWARE, cached_answer
from tests.support.gunicorn import ROOT, run_server
from tests.support.hotpath_parity import CASES, environ_for
from tests.support.metrics import Scrapes

NEW_REQUEST_ID = re.compile(r"[0-9a-f]{32}")


@pytest.fixture(scope="module")
def parity_results(tmp_path_factory) -> dict[str, dict]:
    """Every case of tests/support/hotpath_parity.py, answered both ways in a process of
    its own on an SQLite file (the per-process config cache needs one)."""
    db = tmp_path_factory.mktemp("hotpath") / "config.db"
    run = subprocess.run(
        [sys.executable, "-m", "tests.support.hotpath_parity", str(db)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    results = [json.loads(line) for line in run.stdout.splitlines()]
    assert [r["case"]["name"] for r in results] == [case["name"] for case in CASES]
    return {r["case"]["name"]: r for r in results}


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_answers_only_when_certain_and_then_as_django_does(parity_results, case):
    result = parity_results[case["name"]]
    assert result["fast"] is not case.get("delegated", False)
    wrapped, plain = result["wrapped"], result["django"]
    assert wrapped["status"] == plain["status"]
    assert wrapped["body"] == plain["body"]
    wrapped_id = wrapped["headers"].pop("x-request-id")
    plain_id = plain["headers"].pop("x-request-id")
    assert wrapped["headers"] == plain["headers"]  # every header, same value
    incoming = case.get("environ", {}).get("HTTP_X_REQUEST_ID")
    if incoming:
        assert wrapped_id == plain_id == incoming
    else:
        assert NEW_REQUEST_ID.fullmatch(wrapped_id) and NEW_REQUEST_ID.fullmatch(plain_id)


def test_the_fast_answer_is_the_stored_config(parity_results):
    plain = parity_results["plain"]["wrapped"]
    assert plain["status"] == "200 OK"
    assert json.loads(plain["body"]) == {
        "device_type": "jetson_orin",
        "port": 9102,
        "reload_port": 9101,
        "metrics": {"gpu": True},
        "shelly": {"enabled": True, "server_url": "http://x"},
    }
    assert plain["headers"]["etag"] == '"1"'
    assert plain["headers"]["cache-control"] == "no-cache"


def test_the_mirrored_middleware_is_the_projects(settings):
    """A change of MIDDLEWARE turns the fast path off (every call goes to Django): this
    fails so that whoever changes it checks what devices.api.hotpath reproduces."""
    assert tuple(settings.MIDDLEWARE) == MIRRORED_MIDDLEWARE


@pytest.mark.django_db
def test_without_the_config_counter_django_answers_every_call(anon):
    """The suite's database (in-memory SQLite, or PostgreSQL where several servers may
    share it) has no per-process cache, so nothing is answered ahead of Django."""
    assert anon.put("/config/edge-pg", {"device_type": "jetson"}, format="json").status_code == 200
    assert anon.get("/config/edge-pg").status_code == 200
    assert cached_answer(environ_for("GET", "/config/edge-pg")) is None


def test_over_gunicorn_fast_answers_match_the_first_and_are_counted(tmp_path):
    """One worker: the first GET after the write is Django's (it fills the cache), the
    next ones come from the cache. Same answer, and /metrics counts every one."""
    with run_server(tmp_path, workers=1) as server:
        body = {"device_type": "rpi", "port": 9100, "metrics": {"cpu_temp": True}}
        assert server.request("PUT", "/config/edge-hot", json=body).ok
        before = server.request("GET", "/metrics").text
        session = requests.Session()
        answers = [session.get(f"{server.url}/config/edge-hot", timeout=10) for _ in range(20)]
        scrapes = Scrapes(before, server.request("GET", "/metrics").text)

        first = answers[0]
        assert first.status_code == 200 and first.json() == {**body, "reload_port": 9101}
        ignored = {"date", "x-request-id"}
        for answer in answers[1:]:
            assert answer.status_code == 200
            assert answer.content == first.content
            assert {k: v for k, v in answer.headers.items() if k.lower() not in ignored} == {
                k: v for k, v in first.headers.items() if k.lower() not in ignored
            }
        assert len({answer.headers["X-Request-ID"] for answer in answers}) == 20
        assert (
            scrapes.delta(
                "ems_http_requests_total", route="config-detail", method="GET", status="200"
            )
            == 20
        )


def test_a_failure_ahead_of_django_leaves_the_answer_to_django(parity_results):
    """Recording the caller failed on the fast path: Django answers instead (and fails the
    same way, in the contract's error shape), rather than gunicorn's bare 500 page."""
    result = parity_results["contact recording fails"]
    assert result["fast"] is True
    assert result["wrapped"]["status"].startswith("500")
    assert json.loads(result["wrapped"]["body"])["error"]
    assert result["wrapped"]["headers"]["content-type"] == "application/json"
