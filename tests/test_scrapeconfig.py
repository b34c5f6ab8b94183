"""`GET /kubernetes/manifests?format=scrapeconfig`: a Prometheus Operator ScrapeConfig that
discovers the devices through `GET /prometheus/targets`, produced without any cluster."""

from __future__ import annotations

import copy

import jsonschema
import pytest
import yaml

from k8sbridge.manifests import desired_scrapeconfig
from tests.support.fleet import add_device
from tests.support.prometheus_operator import validate_scrapeconfig

pytestmark = pytest.mark.django_db

URL = "/kubernetes/manifests"
SERVER = "http://edge-metrics-server.edge.svc:8081"


def scrapeconfig(client, **query: str) -> tuple[str, dict]:
    response = client.get(URL, {"format": "scrapeconfig", **query})
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("application/yaml")
    text = response.content.decode()
    [document] = [d for d in yaml.safe_load_all(text) if d]
    validate_scrapeconfig(document)
    return text, document


def test_desired_scrapeconfig_with_a_bearer_token_from_a_secret():
    assert desired_scrapeconfig("edge", server_url=SERVER + "/", authorize=True) == {
        "apiVersion": "monitoring.coreos.com/v1alpha1",
        "kind": "ScrapeConfig",
        "metadata": {
            "name": "edge-exporters",
            "namespace": "edge",
            "labels": {
                "app.kubernetes.io/name": "edge-metrics-server",
                "app.kubernetes.io/instance": "edge-metrics-server",
                "app.kubernetes.io/part-of": "edge-metrics",
                "app.kubernetes.io/component": "scraping",
            },
        },
        "spec": {
            "httpSDConfigs": [
                {
                    "url": f"{SERVER}/prometheus/targets",
                    "refreshInterval": "30s",
                    "authorization": {
                        "type": "Bearer",
                        "credentials": {"name": "edge-metrics-prometheus", "key": "token"},
                    },
                }
            ],
            "metricsPath": "/metrics",
            "relabelings": [{"targetLabel": "job", "replacement": "edge-exporter"}],
        },
    }


def test_desired_scrapeconfig_without_authorization():
    spec = desired_scrapeconfig("m", server_url=SERVER, authorize=False)["spec"]
    assert spec["httpSDConfigs"] == [
        {"url": f"{SERVER}/prometheus/targets", "refreshInterval": "30s"}
    ]


def test_route_in_token_mode_points_at_server_url_with_the_bearer_secret(api, settings):
    settings.AUTH_MODE = "token"
    settings.SERVER_URL = SERVER
    add_device("edge-01", ip="192.0.2.10")  # devices do not matter: discovery is live
    text, document = scrapeconfig(api, namespace="edge")
    assert document == desired_scrapeconfig("edge", server_url=SERVER, authorize=True)
    [discovery] = document["spec"]["httpSDConfigs"]
    assert discovery["url"] == "http://edge-metrics-server.edge.svc:8081/prometheus/targets"
    assert discovery["authorization"]["type"] == "Bearer"
    lines = text.splitlines()
    assert "# Namespace: edge" in lines
    # The header says how to make the Secret the ScrapeConfig reads, in its namespace.
    assert any(
        "kubectl create secret generic edge-metrics-prometheus -n edge" in line
        and "--from-literal=token=" in line
        for line in lines
    )
    assert not any(line.startswith("# Warning") for line in lines)
    assert text.count("\n---\n") == 1


def test_route_in_open_mode_needs_no_authorization(anon, settings):
    settings.AUTH_MODE = "open"
    settings.SERVER_URL = SERVER
    _, document = scrapeconfig(anon)
    assert document["metadata"]["namespace"] == "monitoring"  # K8S_NAMESPACE
    assert "authorization" not in document["spec"]["httpSDConfigs"][0]


def test_a_server_url_prometheus_cannot_reach_is_pointed_out(api, settings):
    settings.SERVER_URL = "http://localhost:8081"
    text, document = scrapeconfig(api)
    assert document["spec"]["httpSDConfigs"][0]["url"] == "http://localhost:8081/prometheus/targets"
    assert any(line.startswith("# Warning: SERVER_URL") for line in text.splitlines())


@pytest.mark.usefixtures("doc_networks")
def test_the_discovery_url_is_the_targets_route(api, settings):
    """The URL the ScrapeConfig names answers as Prometheus expects, with its token."""
    settings.SERVER_URL = "http://testserver"
    add_device("edge-01", ip="192.0.2.10")
    _, document = scrapeconfig(api)
    url = document["spec"]["httpSDConfigs"][0]["url"]
    response = api.get(url.removeprefix("http://testserver"))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json()[0]["targets"] == ["192.0.2.10:9100"]


@pytest.mark.usefixtures("doc_networks")
def test_services_is_the_default_format(api):
    add_device("edge-01", ip="192.0.2.10")
    default = api.get(URL).content
    assert api.get(URL, {"format": "services"}).content == default
    # Given empty, the format is a mistake (a template that lost its value), not "any".
    assert api.get(URL, {"format": ""}).status_code == 400
    assert [d["kind"] for d in yaml.safe_load_all(default) if d] == [
        "Service",
        "Endpoints",
        "EndpointSlice",
    ]


@pytest.mark.parametrize("value", ["yaml", "json", "ScrapeConfig", "scrapeconfig "])
def test_unknown_format_is_400_invalid_format(api, value):
    response = api.get(URL, {"format": value})
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_format"
    assert "services, scrapeconfig" in body["message"]


def test_scrapeconfig_is_an_operator_route(anon, settings):
    settings.AUTH_MODE = "token"
    assert anon.get(URL, {"format": "scrapeconfig"}).status_code == 401


def test_scrapeconfig_schema_catches_a_misspelled_or_too_new_field():
    """The hand-written schema is strict: what older operators refuse is an error."""
    good = desired_scrapeconfig("m", server_url=SERVER, authorize=True)
    validate_scrapeconfig(good)
    misspelled = copy.deepcopy(good)
    misspelled["spec"]["httpSdConfigs"] = misspelled["spec"].pop("httpSDConfigs")
    with pytest.raises(jsonschema.ValidationError, match="httpSdConfigs"):
        validate_scrapeconfig(misspelled)
    too_new = copy.deepcopy(good)
    too_new["spec"]["jobName"] = "edge-exporter"  # Prometheus Operator 0.7x only
    with pytest.raises(jsonschema.ValidationError, match="jobName"):
        validate_scrapeconfig(too_new)
    no_target = copy.deepcopy(good)
    no_target["spec"]["relabelings"] = [{"replacement": "edge-exporter"}]
    with pytest.raises(jsonschema.ValidationError, match="targetLabel"):
        validate_scrapeconfig(no_target)
