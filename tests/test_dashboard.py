"""The Grafana dashboard (manifests/components/grafana-dashboard): what Grafana needs to
load it, every panel query valid PromQL (promtool parses each), and the ConfigMap the
kube-prometheus-stack sidecar picks up. Running the queries against a real Prometheus is
in test_prometheus_e2e.py."""

from __future__ import annotations

import json
import re
import shutil
from itertools import combinations

import pytest
import yaml

from tests.support.prometheus import DASHBOARD, dashboard, panel_queries, panels, promtool
from tests.support.ship import KUBERNETES_VERSIONS, MANIFESTS, kustomize, validate_schema

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


@pytest.fixture(scope="module")
def board() -> dict:
    return dashboard()


def test_dashboard_has_what_grafana_needs_to_load_it(board):
    assert isinstance(board["schemaVersion"], int) and board["schemaVersion"] >= 36
    assert board["uid"] == "edge-metrics-fleet"
    assert board["title"]
    # No "id": Grafana assigns its own; a fixed one would collide on import.
    assert "id" not in board
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["device_type"]["datasource"] == DATASOURCE


def test_every_panel_and_query_uses_the_datasource_variable(board):
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels(board):
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
            assert target["expr"].strip()


def test_panels_fit_the_grid_without_overlapping(board):
    boxes = []
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        boxes.append((panel["title"], grid))
    for (a, p), (b, q) in combinations(boxes, 2):
        apart = (
            p["x"] + p["w"] <= q["x"]
            or q["x"] + q["w"] <= p["x"]
            or p["y"] + p["h"] <= q["y"]
            or q["y"] + q["h"] <= p["y"]
        )
        assert apart, (a, b)


def test_it_shows_what_the_issue_asks_for(board):
    """Fleet by type, down devices with down since, drift, reloads, syncs, and the
    exporters' own power and temperature series."""
    text = json.dumps(board)
    for metric in (
        "ems_devices",
        "ems_device_up",
        "ems_device_last_seen_timestamp_seconds",
        "ems_device_config_in_sync",
        "ems_device_reload_pending",
        "ems_device_reloads_total",
        "ems_kubernetes_last_sync_timestamp_seconds",
        "ems_kubernetes_sync_runs_total",
        "ems_leader",
        "_watts",
        "_celsius",
    ):
        assert metric in text, metric
    titles = [panel["title"] for panel in panels(board)]
    assert any("down since" in title for title in titles)


def test_every_query_is_valid_promql(board, tmp_path):
    """promtool parses each query (as Grafana sends it, its variables replaced) as the
    expression of a recording rule; only known variables are left to replace."""
    queries = panel_queries(board)
    for title, expr in queries:
        assert not re.search(r"\$\w", expr), (title, expr)
    rules = [
        {"record": f"dashboard:query:{n}", "expr": expr} for n, (_, expr) in enumerate(queries)
    ]
    path = tmp_path / "queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = promtool("check", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(queries)} rules found" in done.stdout


def test_the_component_ships_it_as_a_configmap_for_the_grafana_sidecar(tmp_path):
    shutil.copytree(MANIFESTS, tmp_path / "manifests")
    (tmp_path / "overlay").mkdir()
    (tmp_path / "overlay" / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\n"
        "kind: Kustomization\n"
        "resources: [../manifests]\n"
        "components: [../manifests/components/grafana-dashboard]\n"
    )
    (configmap,) = [
        o
        for o in kustomize(tmp_path / "overlay")
        if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "edge-metrics-dashboard"
    ]
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["labels"]["app.kubernetes.io/component"] == "dashboard"
    assert configmap["metadata"]["namespace"] == "monitoring"
    assert configmap["data"] == {"edge-metrics-fleet.json": DASHBOARD.read_text()}
    # kubectl apply keeps the whole object in an annotation, which is limited to 256 KiB.
    assert len(DASHBOARD.read_bytes()) < 200_000
    for version in KUBERNETES_VERSIONS:
        validate_schema(configmap, version)
