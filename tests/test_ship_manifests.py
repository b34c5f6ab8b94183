"""manifests/: valid for Kubernetes 1.24+, least privilege, production-shaped, and
`kubectl apply -k manifests/` renders the whole set."""

from __future__ import annotations

import copy
import re
import shutil
from urllib.parse import urlsplit

import kubernetes_validate
import pytest

from tests.support.prometheus_operator import validate_scrapeconfig
from tests.support.ship import (
    KUBERNETES_VERSIONS,
    MANIFESTS,
    STANDARD_LABELS,
    by_kind,
    kustomize,
    load_yaml_documents,
    pod_spec,
    project_version,
    validate_schema,
)

MANIFEST_FILES = sorted(
    path for path in MANIFESTS.rglob("*.yaml") if path.name != "kustomization.yaml"
)
CORE_OBJECTS = [
    (path.relative_to(MANIFESTS).as_posix(), doc)
    for path in MANIFEST_FILES
    for doc in load_yaml_documents(path)
    # Prometheus Operator kinds have no offline schema: checked by field lists below.
    if not doc["apiVersion"].startswith("monitoring.coreos.com/")
]


@pytest.fixture(scope="module")
def base() -> dict[str, dict]:
    return by_kind(kustomize(MANIFESTS))


def test_apply_k_renders_the_whole_set_in_dependency_order():
    objects = kustomize(MANIFESTS)
    assert [(o["kind"], o["metadata"]["name"]) for o in objects] == [
        ("ServiceAccount", "edge-metrics-server"),
        ("Role", "edge-metrics-manager"),
        ("RoleBinding", "edge-metrics-manager"),
        ("ConfigMap", "edge-metrics-server"),
        ("Service", "edge-metrics-server"),
        ("PersistentVolumeClaim", "edge-metrics-server-data"),
        ("Deployment", "edge-metrics-server"),
        ("CronJob", "edge-metrics-sync"),
    ]
    assert {o["metadata"]["namespace"] for o in objects} == {"monitoring"}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize(
    ("source", "obj"), CORE_OBJECTS, ids=lambda v: v if isinstance(v, str) else v["kind"]
)
def test_every_manifest_is_valid_for_kubernetes(source, obj, version):
    validate_schema(obj, version)


def test_schema_validation_catches_a_misspelled_field(base):
    """The validator is strict: a field Kubernetes would drop or refuse is an error."""
    broken = copy.deepcopy(base["Deployment"])
    broken["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFs"] = True
    with pytest.raises(kubernetes_validate.ValidationError, match="readOnlyRootFs"):
        validate_schema(broken, KUBERNETES_VERSIONS[0])


@pytest.mark.parametrize("path", MANIFEST_FILES, ids=lambda p: p.relative_to(MANIFESTS).as_posix())
def test_every_object_carries_the_app_kubernetes_io_labels(path):
    for doc in load_yaml_documents(path):
        labels = doc["metadata"]["labels"]
        assert STANDARD_LABELS.items() <= labels.items(), doc["metadata"]["name"]
        assert labels["app.kubernetes.io/component"]
        assert doc["metadata"]["namespace"] == "monitoring"


def test_role_grants_only_what_the_bridge_uses_in_one_namespace(base):
    role = base["Role"]
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["services", "endpoints"],
            "verbs": ["get", "list", "create", "patch", "delete"],
        },
        {
            "apiGroups": ["discovery.k8s.io"],
            "resources": ["endpointslices"],
            "verbs": ["get", "list", "create", "patch", "delete"],
        },
    ]
    binding = base["RoleBinding"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "edge-metrics-manager",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "edge-metrics-server", "namespace": "monitoring"}
    ]
    every_kind = {
        path.name: [d["kind"] for d in load_yaml_documents(path)] for path in MANIFEST_FILES
    }
    assert not any(
        kind in {"ClusterRole", "ClusterRoleBinding"}
        for kinds in every_kind.values()
        for kind in kinds
    )


def test_deployment_is_one_recreated_replica(base):
    deployment = base["Deployment"]
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}


@pytest.mark.parametrize("kind", ["Deployment", "CronJob"])
def test_pods_run_locked_down_as_uid_1000(base, kind):
    spec = pod_spec(base[kind])
    assert spec["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "runAsGroup": 1000,
        "fsGroup": 1000,
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    (container,) = spec["containers"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert spec["serviceAccountName"] == "edge-metrics-server"
    assert spec["enableServiceLinks"] is False
    assert container["resources"]["requests"] and container["resources"]["limits"]
    # Read-only root: the database and secret key in /data, scratch space in /tmp.
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts == {"/data": "data", "/tmp": "tmp"}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"] == {"claimName": "edge-metrics-server-data"}
    assert "emptyDir" in volumes["tmp"]


@pytest.mark.parametrize("kind", ["Deployment", "CronJob"])
def test_settings_come_from_the_configmap_and_tokens_from_an_optional_secret(base, kind):
    (container,) = pod_spec(base[kind])["containers"]
    assert container["envFrom"] == [
        {"configMapRef": {"name": "edge-metrics-server"}},
        {"secretRef": {"name": "edge-metrics-server", "optional": True}},
    ]
    env = {e["name"]: e for e in container["env"]}
    assert env["K8S_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert "API_TOKENS" not in base["ConfigMap"]["data"]
    if kind == "Deployment":
        # Declared after K8S_NAMESPACE, so Kubernetes expands the reference.
        assert list(env).index("SERVER_URL") > list(env).index("K8S_NAMESPACE")
        assert env["SERVER_URL"]["value"] == "http://edge-metrics-server.$(K8S_NAMESPACE).svc:8081"


def test_probes_use_health_on_the_http_port(base):
    (container,) = base["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert container["ports"] == [{"name": "http", "containerPort": 8081, "protocol": "TCP"}]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": "http"}


def test_images_are_tagged_with_the_project_version(base):
    for kind in ("Deployment", "CronJob"):
        (container,) = pod_spec(base[kind])["containers"]
        assert container["image"] == f"edge-metrics-server:{project_version()}"


def test_service_selects_only_the_server_pods(base):
    service = base["Service"]
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8081, "targetPort": "http", "protocol": "TCP"}
    ]
    template_labels = base["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= template_labels.items()
    assert service["spec"]["selector"] == base["Deployment"]["spec"]["selector"]["matchLabels"]
    cron_labels = base["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    assert not service["spec"]["selector"].items() <= cron_labels.items()
    assert "nodePort: 30081" in (MANIFESTS / "service.yaml").read_text()


def test_cronjob_syncs_every_5_minutes_beside_the_server(base):
    cronjob = base["CronJob"]
    assert cronjob["spec"]["schedule"] == "*/5 * * * *"
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    spec = pod_spec(cronjob)
    (container,) = spec["containers"]
    assert container["command"] == ["python", "manage.py", "sync_kubernetes"]
    (deployment_container,) = pod_spec(base["Deployment"])["containers"]
    assert container["image"] == deployment_container["image"]
    # SQLite on a ReadWriteOnce claim: only the server's node can open the database.
    (term,) = spec["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert (
        term["labelSelector"]["matchLabels"]
        == base["Deployment"]["spec"]["selector"]["matchLabels"]
    )
    assert base["PersistentVolumeClaim"]["spec"]["accessModes"] == ["ReadWriteOnce"]


def test_cronjob_command_is_a_management_command():
    from django.core.management import get_commands

    if "sync_kubernetes" not in get_commands():
        pytest.skip("sync_kubernetes comes with the Kubernetes bridge, not merged here yet")
    assert get_commands()["sync_kubernetes"] == "k8sbridge"


# Fields of the Prometheus Operator's ServiceMonitor CRD (monitoring.coreos.com/v1) used
# here; the CRD's schema is not available offline, so this guards against typos.
SERVICEMONITOR_SPEC_FIELDS = {
    "endpoints", "selector", "namespaceSelector", "jobLabel", "targetLabels",
    "podTargetLabels", "sampleLimit", "targetLimit", "attachMetadata",
}  # fmt: skip
SERVICEMONITOR_ENDPOINT_FIELDS = {
    "port", "targetPort", "path", "scheme", "params", "interval", "scrapeTimeout",
    "honorLabels", "honorTimestamps", "relabelings", "metricRelabelings", "tlsConfig",
    "authorization", "basicAuth", "bearerTokenSecret", "followRedirects", "enableHttp2",
}  # fmt: skip


def test_servicemonitor_scrapes_the_devices_the_bridge_publishes():
    (monitor,) = load_yaml_documents(MANIFESTS / "components/servicemonitor/servicemonitor.yaml")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["kind"] == "ServiceMonitor"
    spec = monitor["spec"]
    assert set(spec) <= SERVICEMONITOR_SPEC_FIELDS
    assert spec["selector"] == {"matchLabels": {"app": "edge-exporter"}}
    assert spec["namespaceSelector"] == {"matchNames": ["monitoring"]}
    (endpoint,) = spec["endpoints"]
    assert set(endpoint) <= SERVICEMONITOR_ENDPOINT_FIELDS
    assert endpoint["port"] == "metrics"
    assert endpoint["path"] == "/metrics"
    assert endpoint["interval"] == "30s"
    # The contract's labels on every device Service become target labels.
    assert spec["targetLabels"] == ["device_id", "device_type"]
    assert spec["jobLabel"] == "app"


def test_optional_parts_are_components_listed_in_the_kustomization():
    text = (MANIFESTS / "kustomization.yaml").read_text()
    for component in (
        "servicemonitor",
        "scrapeconfig",
        "server-servicemonitor",
        "prometheusrule",
        "grafana-dashboard",
        "emptydir",
        "postgres",
    ):
        assert f"components/{component}" in text
        kustomization = load_yaml_documents(
            MANIFESTS / "components" / component / "kustomization.yaml"
        )
        assert kustomization[0]["kind"] == "Component"


def in_cluster_server_url(base: dict[str, dict]) -> str:
    """SERVER_URL as the Deployment sets it, in the namespace `monitoring`."""
    (container,) = pod_spec(base["Deployment"])["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    return env["SERVER_URL"].replace("$(K8S_NAMESPACE)", "monitoring")


def test_shipped_scrapeconfig_is_what_the_server_generates(base):
    """components/scrapeconfig is the object `GET /kubernetes/manifests?format=scrapeconfig`
    gives for the shipped settings: one definition, two ways to get it."""
    from k8sbridge.manifests import desired_scrapeconfig

    (scrapeconfig,) = load_yaml_documents(MANIFESTS / "components/scrapeconfig/scrapeconfig.yaml")
    validate_scrapeconfig(scrapeconfig)
    authorize = base["ConfigMap"]["data"]["AUTH_MODE"] == "token"
    assert authorize
    assert scrapeconfig == desired_scrapeconfig(
        "monitoring", server_url=in_cluster_server_url(base), authorize=True
    )


def test_scrapeconfig_reads_the_targets_from_the_server_service(base):
    (scrapeconfig,) = load_yaml_documents(MANIFESTS / "components/scrapeconfig/scrapeconfig.yaml")
    (discovery,) = scrapeconfig["spec"]["httpSDConfigs"]
    url = urlsplit(discovery["url"])
    service = base["Service"]
    assert url.hostname == f"{service['metadata']['name']}.monitoring.svc"
    assert url.port == service["spec"]["ports"][0]["port"]
    assert url.path == "/prometheus/targets"
    # The token's Secret is referenced, never shipped: no manifest holds a credential.
    credentials = discovery["authorization"]["credentials"]
    assert credentials == {"name": "edge-metrics-prometheus", "key": "token"}
    shipped = [doc for path in MANIFEST_FILES for doc in load_yaml_documents(path)]
    assert not any(doc["kind"] == "Secret" for doc in shipped)


def test_server_servicemonitor_scrapes_only_the_server_service(base):
    (monitor,) = load_yaml_documents(
        MANIFESTS / "components/server-servicemonitor/servicemonitor.yaml"
    )
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["kind"] == "ServiceMonitor"
    spec = monitor["spec"]
    assert set(spec) <= SERVICEMONITOR_SPEC_FIELDS
    # No namespaceSelector: the Service is in the ServiceMonitor's own namespace.
    assert "namespaceSelector" not in spec
    selector = spec["selector"]["matchLabels"]
    service = base["Service"]
    assert selector.items() <= service["metadata"]["labels"].items()
    # Not the device Services the bridge writes beside it in the namespace.
    from devices.models import Device
    from k8sbridge.objects import device_labels

    device_service_labels = device_labels(Device(device_id="edge-01", device_type="jetson"))
    assert not selector.items() <= device_service_labels.items()
    (endpoint,) = spec["endpoints"]
    assert set(endpoint) <= SERVICEMONITOR_ENDPOINT_FIELDS
    assert endpoint["port"] == service["spec"]["ports"][0]["name"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["interval"] == "30s"


def test_prometheus_components_render_with_the_base(tmp_path):
    shutil.copytree(MANIFESTS, tmp_path / "manifests")
    (tmp_path / "all").mkdir()
    (tmp_path / "all" / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\n"
        "kind: Kustomization\n"
        "resources: [../manifests]\n"
        "components:\n"
        "  - ../manifests/components/scrapeconfig\n"
        "  - ../manifests/components/server-servicemonitor\n"
        "  - ../manifests/components/servicemonitor\n"
        "  - ../manifests/components/prometheusrule\n"
    )
    objects = kustomize(tmp_path / "all")
    prometheus = sorted(
        (o["kind"], o["metadata"]["name"])
        for o in objects
        if o["apiVersion"].startswith("monitoring.coreos.com/")
    )
    assert prometheus == [
        ("PrometheusRule", "edge-metrics-server"),
        ("ScrapeConfig", "edge-exporters"),
        ("ServiceMonitor", "edge-exporters"),
        ("ServiceMonitor", "edge-metrics-server"),
    ]
    assert {o["metadata"]["namespace"] for o in objects} == {"monitoring"}
    (scrapeconfig,) = [o for o in objects if o["kind"] == "ScrapeConfig"]
    validate_scrapeconfig(scrapeconfig)


README = (MANIFESTS.parent / "README.md").read_text()


def test_readme_overlay_example_renders_for_its_namespace(tmp_path):
    """The README's "Manual" overlay, beside a copy of manifests/, does what it says."""
    after_marker = README.split("# my-ems/kustomization.yaml", 1)[1]
    block = after_marker.split("\n", 1)[1].split("```", 1)[0]
    shutil.copytree(MANIFESTS, tmp_path / "manifests")
    (tmp_path / "my-ems").mkdir()
    (tmp_path / "my-ems" / "kustomization.yaml").write_text(block)
    objects = kustomize(tmp_path / "my-ems")
    assert {o["metadata"]["namespace"] for o in objects} == {"edge"}
    index = by_kind(objects)
    assert index["RoleBinding"]["subjects"][0]["namespace"] == "edge"
    assert index["ServiceMonitor"]["spec"]["namespaceSelector"] == {"matchNames": ["edge"]}
    (container,) = pod_spec(index["Deployment"])["containers"]
    assert container["image"] == "registry.example.com/team/edge-metrics-server:2.0.1"


def test_readme_http_sd_overlay_renders_for_its_namespace(tmp_path):
    """The README's http_sd overlay: ScrapeConfig and server ServiceMonitor in `edge`, the
    discovery URL and the METRICS_TOKEN authorization patched in as it says."""
    after_marker = README.split("# my-ems-http-sd/kustomization.yaml", 1)[1]
    block = after_marker.split("\n", 1)[1].split("```", 1)[0]
    shutil.copytree(MANIFESTS, tmp_path / "manifests")
    (tmp_path / "my-ems-http-sd").mkdir()
    (tmp_path / "my-ems-http-sd" / "kustomization.yaml").write_text(block)
    objects = kustomize(tmp_path / "my-ems-http-sd")
    assert {o["metadata"]["namespace"] for o in objects} == {"edge"}
    kinds = [o["kind"] for o in objects]
    assert kinds.count("ServiceMonitor") == 1  # the server's; devices come from the ScrapeConfig
    (scrapeconfig,) = [o for o in objects if o["kind"] == "ScrapeConfig"]
    validate_scrapeconfig(scrapeconfig)
    (discovery,) = scrapeconfig["spec"]["httpSDConfigs"]
    assert discovery["url"] == "http://edge-metrics-server.edge.svc:8081/prometheus/targets"
    (monitor,) = [o for o in objects if o["kind"] == "ServiceMonitor"]
    assert monitor["metadata"]["name"] == "edge-metrics-server"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert set(endpoint) <= SERVICEMONITOR_ENDPOINT_FIELDS
    assert endpoint["authorization"] == {
        "type": "Bearer",
        "credentials": {"name": "edge-metrics-server", "key": "METRICS_TOKEN"},
    }


def test_readme_names_only_files_that_exist():
    paths = {p.rstrip("./") for p in re.findall(r"\b(?:manifests|scripts)/[\w./-]*", README)}
    assert len(paths) >= 9
    for path in paths:
        assert (MANIFESTS.parent / path).exists(), path
    yaml_files = set(re.findall(r"`([\w-]+\.yaml)`", README))
    assert {"rbac.yaml", "cronjob.yaml", "kustomization.yaml"} <= yaml_files
    for name in yaml_files:
        assert list(MANIFESTS.rglob(name)), name


def _with_components(tmp_path, *components: str) -> dict[str, dict]:
    shutil.copytree(MANIFESTS, tmp_path / "manifests")
    (tmp_path / "overlay").mkdir()
    listed = "".join(f"  - ../manifests/components/{c}\n" for c in components)
    (tmp_path / "overlay" / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\n"
        "kind: Kustomization\n"
        "resources: [../manifests]\n"
        f"components:\n{listed}"
    )
    return kustomize(tmp_path / "overlay")


def test_postgres_component_runs_three_replicas_that_roll_without_downtime(tmp_path):
    objects = _with_components(tmp_path, "postgres")
    kinds = by_kind(objects)
    assert "PersistentVolumeClaim" not in kinds and "CronJob" not in kinds
    deployment = kinds["Deployment"]
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    spec = pod_spec(deployment)
    (container,) = spec["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["key"] == "DATABASE_URL"
    assert env["SECRET_KEY"]["valueFrom"]["secretKeyRef"]["key"] == "SECRET_KEY"
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[:3] == ["python", "-m", "edgeserver.drain"]
    pause = float(pre_stop[pre_stop.index("--pause") + 1])
    # Endpoints drop the pod (readiness every 2 s) well within the pause, and the pause,
    # gunicorn's graceful stop and the monitor's fit in the grace period.
    assert pause >= 3 * container["readinessProbe"]["periodSeconds"]
    assert spec["terminationGracePeriodSeconds"] >= pause + 2 * 6 + 10
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert "persistentVolumeClaim" not in volumes["data"]
    pdb = kinds["PodDisruptionBudget"]
    assert pdb["spec"]["minAvailable"] == 2
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    config = kinds["ConfigMap"]["data"]
    assert config["LEADER_ELECTION"] == "auto"
    assert config["K8S_AUTO_SYNC"] == "true"
    assert config["RUNTIME_DIR"] == "/tmp/ems"
    # Leases only here, and only the verbs the elector uses.
    assert kinds["Role"]["rules"][-1] == {
        "apiGroups": ["coordination.k8s.io"],
        "resources": ["leases"],
        "verbs": ["get", "create", "update"],
    }
    for obj in objects:
        for version in KUBERNETES_VERSIONS:
            validate_schema(obj, version)


def test_the_single_replica_base_elects_through_the_database(base):
    assert base["ConfigMap"]["data"]["LEADER_ELECTION"] == "database"
    assert not any("coordination.k8s.io" in r["apiGroups"] for r in base["Role"]["rules"])
