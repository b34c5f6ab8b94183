"""Every Kubernetes route answers what its OpenAPI schema documents (status and body)."""

from __future__ import annotations

import re

import jsonschema
import pytest
from drf_spectacular.generators import SchemaGenerator

from tests.helpers import send
from tests.support.fleet import add_device

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def openapi():
    return SchemaGenerator().get_schema(request=None, public=True)


def json_schema(node, components):
    """OpenAPI 3.0 schema → JSON Schema: refs inlined, `nullable` as a null alternative."""
    if isinstance(node, dict):
        if "$ref" in node:
            return json_schema(components[node["$ref"].rsplit("/", 1)[1]], components)
        converted = {k: json_schema(v, components) for k, v in node.items() if k != "nullable"}
        if node.get("nullable"):
            return {"anyOf": [converted, {"type": "null"}]}
        return converted
    if isinstance(node, list):
        return [json_schema(item, components) for item in node]
    return node


def assert_documented(openapi, method: str, path: str, response) -> None:
    templated = re.sub(r"^/kubernetes/(sync|resources)/[^/]+$", r"/kubernetes/\1/{device_id}",
                       path.split("?")[0].rstrip("/"))
    operation = openapi["paths"][templated][method.lower()]
    documented = operation["responses"].get(str(response.status_code))
    assert documented is not None, f"{method} {path}: {response.status_code} is not documented"
    content_type = response["Content-Type"].split(";")[0]
    assert content_type in documented["content"], (method, path, content_type)
    if content_type == "application/json":
        schema = json_schema(documented["content"][content_type]["schema"],
                             openapi["components"]["schemas"])
        jsonschema.validate(response.json(), schema)


def exercise(api) -> list[tuple[str, str, object]]:
    calls = [
        ("POST", "/kubernetes/sync", {"dry_run": True}),
        ("POST", "/kubernetes/sync", None),
        ("POST", "/kubernetes/sync", {"namespace": "Bad"}),
        ("POST", "/kubernetes/sync/edge-01", None),
        ("POST", "/kubernetes/sync/sick", None),
        ("POST", "/kubernetes/sync/ghost", None),
        ("GET", "/kubernetes/status", None),
        ("GET", "/kubernetes/health", None),
        ("GET", "/kubernetes/manifests", None),
        ("GET", "/kubernetes/manifests?namespace=Bad", None),
        ("GET", "/kubernetes/manifests?format=scrapeconfig&namespace=edge", None),
        ("GET", "/kubernetes/manifests?format=bogus", None),
        ("GET", "/kubernetes/resources/edge-01", None),
        ("GET", "/kubernetes/resources/sick", None),
        ("GET", "/kubernetes/resources/ghost", None),
        ("DELETE", "/kubernetes/resources/edge-01", None),
        ("DELETE", "/kubernetes/cleanup", None),
    ]
    return [(m, p, send(api, m, p, b)) for m, p, b in calls]


def test_responses_with_a_cluster_match_the_schema(api, kube, openapi):
    add_device("edge-01", ip="192.0.2.1")
    add_device("EDGE-01", ip="192.0.2.2")
    add_device("sick", ip="192.0.2.3", status="unreachable")
    kube.fail("get", "namespaces", code=403)
    kube.put("services", "monitoring", {"metadata": {"name": "edge-device-orphan", "labels": {
        "managed_by": "edge-metrics-server", "device_id": "orphan"}},
        "spec": {"clusterIP": "None", "ports": [{"port": 9100}]}})
    for method, path, response in exercise(api):
        assert_documented(openapi, method, path, response)


def test_responses_without_a_cluster_match_the_schema(api, openapi):
    add_device("edge-01", ip="192.0.2.1")
    for method, path, response in exercise(api):
        assert_documented(openapi, method, path, response)


def test_forbidden_read_of_resources_is_a_documented_502(api, kube, openapi):
    add_device("edge-01")
    kube.fail("get", "services", code=403)
    response = api.get("/kubernetes/resources/edge-01")
    assert response.status_code == 502
    assert response.json()["error"] == "Kubernetes API error"
    assert_documented(openapi, "GET", "/kubernetes/resources/edge-01", response)
