"""The exporter's `GET /config/{id}` answered ahead of Django (devices.api.hotpath): only
what it learned from Django's own answers, and then exactly Django's answer."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import requests

from devices.api.hotpath import LearnedHeaders, plain_call
from devices.served import ServedAnswer
from tests.helpers import send
from tests.support.gunicorn import ROOT, run_server
from tests.support.hotpath_parity import CASES, environ_for
from tests.support.metrics import Scrapes

NEW_REQUEST_ID = re.compile(r"[0-9a-f]{32}")


@pytest.fixture(scope="module")
def parity_results(tmp_path_factory) -> dict[str, dict]:
    """Every case of tests/support/hotpath_parity.py, answered both ways in a process of
    its own, on an SQLite file."""
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
def test_answers_only_what_it_learned_and_then_as_django_does(parity_results, case):
    result = parity_results[case["name"]]
    expected_fast = not case.get("delegated", False) and not case.get("fault", False)
    assert result["fast"] is expected_fast
    wrapped, plain = result["wrapped"], result["django"]
    assert wrapped["status"] == plain["status"]
    assert wrapped["body"] == plain["body"]
    wrapped_id = wrapped["headers"].pop("x-request-id", None)
    plain_id = plain["headers"].pop("x-request-id", None)
    wrapped["headers"].pop("x-nonce", None), plain["headers"].pop("x-nonce", None)
    assert wrapped["headers"] == plain["headers"]  # every header, same value
    incoming = case.get("environ", {}).get("HTTP_X_REQUEST_ID")
    if incoming:
        assert wrapped_id == plain_id == incoming
    elif plain_id is not None:
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
    assert plain["headers"]["x-frame-options"] == "DENY"


def test_what_another_middleware_adds_is_replayed(parity_results):
    result = parity_results["another middleware"]
    assert result["fast"] and result["wrapped"]["headers"]["x-powered-by"] == "edge"


def test_a_failure_ahead_of_django_leaves_the_answer_to_django(parity_results):
    """Recording the caller failed on the fast path: Django answers instead (and fails the
    same way, in the contract's error shape), rather than gunicorn's bare 500 page."""
    result = parity_results["contact recording fails"]
    assert result["wrapped"]["status"].startswith("500")
    assert json.loads(result["wrapped"]["body"])["error"]
    assert result["wrapped"]["headers"]["content-type"] == "application/json"


def _answer(body: bytes = b'{"a":1}') -> ServedAnswer:
    return ServedAnswer(200, (("ETag", '"1"'), ("Content-Type", "application/json")), body)


def _django_headers(*extra: tuple[str, str]) -> list[tuple[str, str]]:
    return [("Content-Type", "application/json"), ("ETag", '"1"'), *extra, ("X-Request-ID", "x")]


def test_headers_are_trusted_after_two_agreeing_answers_of_a_shape():
    learned = LearnedHeaders()
    django = _django_headers(("X-Frame-Options", "DENY"))
    learned.learn("shape", "200 OK", django, b'{"a":1}', _answer())
    assert learned.get("shape") is None
    learned.learn("shape", "200 OK", django, b'{"a":1}', _answer())
    assert learned.get("shape") == ("200 OK", (("X-Frame-Options", "DENY"),))


@pytest.mark.parametrize(
    "second",
    [
        (_django_headers(("X-Frame-Options", "SAMEORIGIN")), b'{"a":1}'),  # headers differ
        (_django_headers(("X-Frame-Options", "DENY")), b"compressed"),  # body changed
        ([("ETag", '"2"'), ("Content-Type", "application/json")], b'{"a":1}'),  # ETag changed
    ],
    ids=["a header changes per answer", "the body was changed", "a served header was changed"],
)
def test_a_shape_django_answers_otherwise_is_never_answered_ahead(second):
    learned = LearnedHeaders()
    learned.learn(
        "shape", "200 OK", _django_headers(("X-Frame-Options", "DENY")), b'{"a":1}', _answer()
    )
    headers, body = second
    learned.learn("shape", "200 OK", headers, body, _answer())
    learned.learn("shape", "200 OK", headers, body, _answer())
    learned.learn("shape", "200 OK", headers, body, _answer())
    assert learned.get("shape") is None


def test_only_an_exporters_plain_call_is_one():
    assert plain_call(environ_for("GET", "/config/edge-01")).device_id == "edge-01"
    assert plain_call(environ_for("GET", "/config/edge-01/")) is not None
    for not_plain in (
        environ_for("PUT", "/config/edge-01"),
        environ_for("GET", "/config/edge-01", QUERY_STRING="explain=true"),
        environ_for("GET", "/config/edge-01", HTTP_AUTHORIZATION="Bearer x"),
        environ_for("GET", "/config/edge-01", HTTP_COOKIE="sessionid=1"),
        environ_for("GET", "/config/edge-01", HTTP_IF_NONE_MATCH='"1"'),
        environ_for("GET", "/config/edge-01/history"),
        environ_for("GET", "/d/token/config/edge-01"),
    ):
        assert plain_call(not_plain) is None
    # The caller's own request id and address do not make another shape.
    assert (
        plain_call(environ_for("GET", "/config/a", HTTP_X_REQUEST_ID="1")).shape
        == plain_call(environ_for("GET", "/config/b", HTTP_X_FORWARDED_FOR="10.0.0.1")).shape
    )


@pytest.mark.django_db
def test_the_suite_runs_the_fast_path(anon):
    """In-process tests go through the same WSGI application as gunicorn: after two of
    Django's answers of a shape, the fast path answers, with the same body and headers."""
    assert send(anon, "PUT", "/config/edge-01", {"device_type": "jetson"}).status_code == 200
    answers = [anon.get("/config/edge-01") for _ in range(3)]
    assert [a.answered_by for a in answers] == ["django", "django", "fast path"]
    first, fast = answers[0], answers[2]
    assert (
        fast.json() == first.json() == {"device_type": "jetson", "port": 9100, "reload_port": 9101}
    )
    ignored = {"X-Request-ID"}
    assert {k: v for k, v in fast.items() if k not in ignored} == {
        k: v for k, v in first.items() if k not in ignored
    }
    assert anon.get("/config/nobody").status_code == 404


def test_over_gunicorn_fast_answers_match_the_first_and_are_counted(tmp_path):
    """One worker: the first GETs after the write are Django's (the fast path learns from
    them), the next ones the fast path's. Same answer, and /metrics counts every one."""
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
