"""End to end through a real gunicorn process on a fresh database (SQLite or PostgreSQL)."""

from __future__ import annotations

import re
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.support.gunicorn import run_server

pytestmark = pytest.mark.e2e


def test_exporter_start_sequence(server):
    # The exporter: GET its config; on 404, PUT its local config; then GET again.
    assert server.request("GET", "/config/orin-desktop", auth=False).status_code == 404
    local = {
        "device_type": "jetson_orin",
        "metrics": {"gpu": True},
        "port": 9102,
        "reload_port": 9101,
        "shelly": {"enabled": False},
    }
    put = server.request("PUT", "/config/orin-desktop", auth=False, json=local)
    assert put.status_code == 200 and put.json()["status"] == "registered"
    got = server.request("GET", "/config/orin-desktop", auth=False)
    assert got.json() == local
    assert got.headers["ETag"] == '"1"'


def test_two_simultaneous_registrations_of_one_device(server):
    body = {"device_type": "jetson_orin", "metrics": {"a": True}}

    def register(i: int) -> requests.Response:
        return requests.put(f"{server.url}/config/edge-race", json={**body, "n": i}, timeout=30)

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(register, range(8)))
    assert [r.status_code for r in responses] == [200] * 8
    statuses = sorted(r.json()["status"] for r in responses)
    assert statuses.count("registered") == 1
    history = server.request("GET", "/config/edge-race/history").json()
    assert history["revisions"][-1]["action"] == "created"


def test_fifty_concurrent_patches_lose_no_field(server):
    assert server.request("PUT", "/config/busy", json={"device_type": "jetson"}).status_code == 200

    def patch(i: int) -> int:
        return server.request("PATCH", "/config/busy", json={f"key_{i}": i}).status_code

    with ThreadPoolExecutor(50) as pool:
        codes = list(pool.map(patch, range(50)))
    assert codes == [200] * 50
    config = server.request("GET", "/config/busy", auth=False).json()
    assert {f"key_{i}": i for i in range(50)}.items() <= config.items()
    history = server.request("GET", "/config/busy/history").json()
    assert history["total"] == 51
    assert sorted(r["version"] for r in history["revisions"]) == list(range(1, 52))


def test_admin_loads_with_its_css(server):
    login = server.request("GET", "/admin/login/", auth=False)
    assert login.status_code == 200
    stylesheets = re.findall(r'href="(/static/[^"]+\.css)"', login.text)
    assert stylesheets, login.text[:500]
    for href in stylesheets:
        css = server.request("GET", href, auth=False)
        assert css.status_code == 200
        assert css.headers["Content-Type"].startswith("text/css")
    docs = server.request("GET", "/api/docs", auth=False)
    assert docs.status_code == 200
    for asset in re.findall(r'src="(/static/[^"]+\.js)"', docs.text):
        assert server.request("GET", asset, auth=False).status_code == 200


def test_bootstrap_token_is_printed_once_and_works(tmp_path):
    with run_server(tmp_path, env={"API_TOKENS": ""}) as server:
        lines = [line for line in server.log().splitlines() if "Bootstrap operator token" in line]
        assert len(lines) == 1
        token = re.search(r"(ems_[A-Za-z0-9_-]+)", lines[0]).group(1)
        headers = {"Authorization": f"Bearer {token}"}
        assert requests.get(f"{server.url}/config", headers=headers, timeout=10).status_code == 200
        assert requests.get(f"{server.url}/config", timeout=10).status_code == 401
        assert server.manage("shell", "-c", "print('ok')").returncode == 0


def test_path_tokens_never_reach_the_logs(tmp_path):
    env = {"DEVICE_REGISTRATION": "token", "ENROLLMENT_TOKENS": "fleet-secret-token-42"}
    with run_server(tmp_path, env=env) as server:
        url = f"{server.url}/d/fleet-secret-token-42/config/edge-01"
        assert requests.put(url, json={"device_type": "jetson"}, timeout=10).status_code == 200
        assert requests.get(url, timeout=10).status_code == 200
        assert (
            requests.get(
                f"{server.url}/d/fleet-secret-token-42/config/nope", timeout=10
            ).status_code
            == 404
        )
        wrong = requests.get(f"{server.url}/d/wrong-secret-99/config/edge-01", timeout=10)
        assert wrong.status_code == 401
        bearer = {"Authorization": "Bearer fleet-secret-token-42"}
        assert (
            requests.get(f"{server.url}/config/edge-01", headers=bearer, timeout=10).status_code
            == 200
        )
        log = server.log()
        assert "/d/[redacted]/config/edge-01" in log
        assert "fleet-secret-token-42" not in log
        assert "wrong-secret-99" not in log


def test_generated_secret_key_is_private_and_kept(tmp_path):
    data = tmp_path / "data"
    env = {"SECRET_KEY": "", "DB_PATH": str(data / "config.db")}
    with run_server(tmp_path, env=env) as server:
        assert server.request("GET", "/health").status_code == 200
    key_file = Path(data / ".secret_key")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    first = key_file.read_text()
    with run_server(tmp_path, env=env):
        pass
    assert key_file.read_text() == first


def test_contact_addresses_reach_the_database_shortly_after_the_get(server):
    import time

    assert server.request("PUT", "/config/edge-c", json={"device_type": "jetson"}).ok
    assert server.request("GET", "/config/edge-c", auth=False).status_code == 200
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        item = server.request("GET", "/devices/edge-c/status").json()
        if item["observed_ip"]:
            break
        time.sleep(0.2)
    assert item["observed_ip"] == "127.0.0.1"


def test_every_worker_serves_a_config_as_soon_as_it_is_written(tmp_path):
    """Configs are cached per process (SQLite); a write in one worker must be what every
    worker serves right after, or a reloaded exporter would load the old config."""
    with run_server(tmp_path, workers=3) as server:
        url = f"{server.url}/config/cached"
        assert server.request("PUT", "/config/cached", json={"device_type": "j", "n": 0}).ok
        for n in range(1, 31):
            # Warm every worker's cache with the current config (new connections spread).
            for _ in range(4):
                requests.get(url, timeout=10, headers={"Connection": "close"})
            written = server.request("PATCH", "/config/cached", json={"n": n})
            assert written.status_code == 200
            for _ in range(6):
                got = requests.get(url, timeout=10, headers={"Connection": "close"})
                assert got.json()["n"] == n
                assert got.headers["ETag"] == f'"{n + 1}"'
        assert server.request("DELETE", "/config/cached").ok
        for _ in range(6):
            assert requests.get(url, timeout=10, headers={"Connection": "close"}).status_code == 404
