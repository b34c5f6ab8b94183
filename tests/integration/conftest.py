"""Against a real cluster: only when EMS_TEST_KUBECONFIG names a kubeconfig, else skipped.

Each test gets a throwaway namespace, deleted afterwards.
"""

from __future__ import annotations

import os
import secrets
import time

import pytest

KUBECONFIG = os.environ.get("EMS_TEST_KUBECONFIG", "")


def pytest_collection_modifyitems(config, items):
    if KUBECONFIG:
        return
    skip = pytest.mark.skip(reason="set EMS_TEST_KUBECONFIG to a real cluster's kubeconfig")
    for item in items:
        if "tests/integration/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(skip)


@pytest.fixture
def cluster_namespace(settings):
    """A new namespace on the real cluster; the bridge is pointed at it."""
    from kubernetes import client as k8s

    from k8sbridge.client import kube_api

    settings.KUBECONFIG = KUBECONFIG
    settings.K8S_REQUEST_TIMEOUT = 30
    core = k8s.CoreV1Api(kube_api().api_client)
    name = f"ems-test-{secrets.token_hex(4)}"
    core.create_namespace({"metadata": {"name": name, "labels": {"purpose": "ems-test"}}})
    settings.K8S_NAMESPACE = name
    try:
        yield name
    finally:
        core.delete_namespace(name)
        # Namespace deletion is asynchronous; wait a little so runs do not pile up.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                core.read_namespace(name)
            except k8s.exceptions.ApiException as exc:
                if exc.status == 404:
                    break
            time.sleep(1)
