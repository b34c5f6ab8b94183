"""Fixtures shared by the whole suite."""

from __future__ import annotations

import _socket
import socket

import pytest

from tests.support.client import ServerClient
from tests.support.exporters import ConnectionLog, FakeExporter, is_loopback
from tests.support.gunicorn import run_server
from users.choices import TokenKind
from users.tokens import api_token_create


@pytest.fixture
def operator_token(db) -> str:
    _, raw = api_token_create(name="tests", kind=TokenKind.OPERATOR)
    return raw


@pytest.fixture
def api(operator_token) -> ServerClient:
    """An API client that sends an operator token, as curl scripts and the dashboard do."""
    client = ServerClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {operator_token}")
    return client


@pytest.fixture
def anon(db) -> ServerClient:
    """An API client without credentials, as the field exporter calls the server."""
    return ServerClient()


@pytest.fixture
def server(tmp_path):
    """gunicorn serving a fresh database (SQLite file, or a new PostgreSQL database)."""
    with run_server(tmp_path) as running:
        yield running


DOC_NETWORKS = ["192.0.2.0/24", "2001:db8::/32"]


@pytest.fixture
def doc_networks(settings) -> None:
    """Devices bound for a cluster sit at documentation addresses (a cluster refuses loopback
    ones). They count as device networks here so their stored status is taken as it is; the
    `outbound` fixture fails any test that would contact them."""
    settings.DEVICE_ALLOWED_NETWORKS = [*settings.DEVICE_ALLOWED_NETWORKS, *DOC_NETWORKS]


@pytest.fixture
def kube(settings, tmp_path, doc_networks):
    """A fake Kubernetes API server (namespace `monitoring`) the bridge is pointed at."""
    from tests.support.kube_api import serve

    with serve() as fake:
        settings.KUBECONFIG = str(fake.write_kubeconfig(tmp_path / "kubeconfig"))
        settings.K8S_REQUEST_TIMEOUT = 1.5
        yield fake


@pytest.fixture(autouse=True)
def fresh_process_memory():
    """What a process keeps in memory between requests (served configs, recent contacts)
    starts empty in every test, as in a new process."""
    from devices.contacts import contacts
    from devices.served import served_configs
    from tests.support.client import forget_application

    served_configs.clear()
    contacts.clear()
    forget_application()


@pytest.fixture(autouse=True)
def outbound(monkeypatch) -> ConnectionLog:
    """Every connection this test process attempts; one outside loopback is refused and
    fails the test (gunicorn children are kept on loopback by DEVICE_ALLOWED_NETWORKS)."""
    log = ConnectionLog()
    original = _socket.socket.connect

    def connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            host, port = address[0], address[1]
            log.attempts.append((host, port))
            if not is_loopback(host):
                log.refused.append((host, port))
                raise ConnectionRefusedError(f"tests never leave loopback ({host}:{port})")
        return original(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    yield log
    assert not log.refused, f"attempted connections outside loopback: {log.refused}"


@pytest.fixture
def exporters():
    """Start FakeExporters (real HTTP servers on 127.0.0.1); all are closed afterwards."""
    started: list[FakeExporter] = []

    def start(**kwargs) -> FakeExporter:
        exporter = FakeExporter(**kwargs)
        started.append(exporter)
        return exporter

    yield start
    for exporter in started:
        exporter.close()


@pytest.fixture
def fast_devices(settings):
    """Device timeouts short enough that a dead device costs a test half a second."""
    settings.PROBE_TIMEOUT = 0.5
    settings.RELOAD_TIMEOUT = 0.5
    settings.PROXY_TIMEOUT = 0.5
    return settings
