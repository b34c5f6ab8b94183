"""Fixtures shared by the whole suite."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from devices.choices import TokenKind
from devices.tokens import api_token_create
from tests.support.gunicorn import run_server


@pytest.fixture
def operator_token(db) -> str:
    _, raw = api_token_create(name="tests", kind=TokenKind.OPERATOR)
    return raw


@pytest.fixture
def api(operator_token) -> APIClient:
    """An API client that sends an operator token, as curl scripts and the dashboard do."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {operator_token}")
    return client


@pytest.fixture
def anon(db) -> APIClient:
    """An API client without credentials, as the field exporter calls the server."""
    return APIClient()


@pytest.fixture
def server(tmp_path):
    """gunicorn serving a fresh database (SQLite file, or a new PostgreSQL database)."""
    with run_server(tmp_path) as running:
        yield running


@pytest.fixture
def kube(settings, tmp_path):
    """A fake Kubernetes API server (namespace `monitoring`) the bridge is pointed at."""
    from tests.support.kube_api import serve

    with serve() as fake:
        settings.KUBECONFIG = str(fake.write_kubeconfig(tmp_path / "kubeconfig"))
        settings.K8S_REQUEST_TIMEOUT = 1.5
        yield fake
