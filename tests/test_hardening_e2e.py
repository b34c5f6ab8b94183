"""Hostile and unusual requests over real sockets, against gunicorn as production runs it:
what gunicorn hands Django, what it refuses itself, and what reaches the logs."""

from __future__ import annotations

import json
import socket

import pytest

from tests.helpers import JETSON
from tests.support.gunicorn import run_server

pytestmark = pytest.mark.e2e

ENROLLMENT = "fleet-enrollment-secret-0123"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    env = {"DEVICE_REGISTRATION": "open", "ENROLLMENT_TOKENS": ENROLLMENT}
    with run_server(tmp_path_factory.mktemp("hostile"), env=env) as running:
        yield running


def raw_request(server, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are and read the whole answer (the server closes or says how
    long it is)."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        length = int(headers.get("Content-Length", "-1"))
        while length < 0 or len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    return int(lines[0].split()[1]), headers, body


def chunked(method: str, path: str, body: bytes, *, pieces: int = 3) -> bytes:
    size = max(1, len(body) // pieces)
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    encoded = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
    return (
        f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    ).encode() + encoded


def test_a_chunked_body_is_read_and_applied(server):
    status, _, body = raw_request(
        server, chunked("PUT", "/config/chunky", json.dumps(JETSON).encode())
    )
    assert status == 200, body
    patch = json.dumps({"port": 9555}).encode()
    status, _, body = raw_request(server, chunked("PATCH", "/config/chunky", patch))
    assert status == 401  # operator route: refused, not silently "patched"
    request = chunked("PATCH", "/config/chunky", patch).replace(
        b"Connection: close\r\n",
        f"Authorization: Bearer {server.token}\r\nConnection: close\r\n".encode(),
    )
    status, _, body = raw_request(server, request)
    assert (status, json.loads(body)["status"]) == (200, "patched")
    assert server.request("GET", "/config/chunky").json()["port"] == 9555


def test_a_chunked_body_over_the_limit_is_refused(server):
    huge = json.dumps({"device_type": "x", "blob": "a" * (300 * 1024)}).encode()
    status, headers, body = raw_request(server, chunked("PUT", "/config/big", huge, pieces=40))
    assert status == 413 and headers["Content-Type"] == "application/json"
    assert json.loads(body)["error"] == "request_too_large"
    assert server.request("GET", "/config/big").status_code == 404


def test_a_number_beyond_a_double_is_a_400_on_this_database(server):
    response = server.request(
        "PUT", "/config/inf", auth=False, data='{"device_type": "x", "v": 1e400}'
    )
    assert response.status_code == 400
    assert "out of range" in response.json()["message"]
    assert "SQL" not in response.text and "constraint" not in response.text


@pytest.mark.parametrize("length", [300, 5000, 8000])
def test_a_long_device_id_is_refused_in_json(server, length):
    response = server.request("GET", "/config/" + "a" * length, auth=False)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_device_id"


def test_what_gunicorn_refuses_itself_is_json_too(server):
    status, headers, body = raw_request(
        server, f"GET /config/{'a' * 9000} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    )
    assert (status, headers["Content-Type"]) == (414, "application/json")
    assert json.loads(body)["error"] == "uri_too_long"
    status, headers, body = raw_request(server, b"GET /config/x HTTP/1.1\r\nBad Header\r\n\r\n")
    assert (status, headers["Content-Type"]) == (400, "application/json")
    assert json.loads(body)["error"] == "bad_request"


def test_no_credential_reaches_a_log_line_whatever_its_spelling(server):
    token = server.token
    probes = [
        ("GET", f"/d/{ENROLLMENT}%2Fconfig%2Fdev-1", {}),
        ("GET", f"/%64/{ENROLLMENT}/config/dev-1", {}),
        ("GET", f"/d/{ENROLLMENT}", {}),
        ("GET", f"/D/{ENROLLMENT}/config/dev-1?x=1", {}),
        ("GET", f"/d/{token}/config/dev-1", {}),
        ("GET", "/devices", {"Referer": f"http://dash.example/d/{ENROLLMENT}/config/x"}),
        ("GET", "/devices", {"Referer": f"http://dash.example/?token={token}"}),
    ]
    for method, path, headers in probes:
        server.request(method, path, auth=False, headers=headers)
    server.session.get(server.url + "/config", auth=(token, ""), timeout=10)
    server.session.get(server.url + "/config", auth=(ENROLLMENT, ""), timeout=10)
    raw_request(server, f"GET /d/{ENROLLMENT}/{'x' * 9000} HTTP/1.1\r\n\r\n".encode())
    log = server.log()
    assert ENROLLMENT not in log and token not in log
    assert "[redacted]" in log
