"""scripts/build.sh, deploy.sh, undeploy.sh: lint, --help, the exact command sequence for
every documented variable combination (DRY_RUN=true), what deploy.sh would apply (its
overlay rendered with the real kustomize), and the real paths against recording
stand-ins for kubectl and docker."""

from __future__ import annotations

import base64
import itertools
import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.ship import (
    KUBERNETES_VERSIONS,
    ROOT,
    SCRIPTS,
    STANDARD_LABELS,
    by_kind,
    kustomize,
    pod_spec,
    project_version,
    run_script,
    tool,
    validate_schema,
)

VERSION = project_version()
REGISTRY = "registry.example.com:5000/team"
SCRIPT_NAMES = ("build.sh", "deploy.sh", "undeploy.sh")
ROOT_WORD = str(ROOT)


def words(line: str) -> list[str]:
    return shlex.split(line)


# --- lint and help ---------------------------------------------------------------------


def test_shellcheck_finds_nothing_in_any_script():
    scripts = sorted(str(p) for p in SCRIPTS.glob("*.sh"))
    assert len(scripts) >= 5
    result = subprocess.run(
        [tool("shellcheck"), "--external-sources", *scripts],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", [*SCRIPT_NAMES, "docker-entrypoint.sh"])
def test_scripts_stop_on_errors_unset_variables_and_failed_pipes(name):
    assert "\nset -euo pipefail\n" in (SCRIPTS / name).read_text()


DOCUMENTED = {
    "build.sh": ["REGISTRY", "PUSH", "PLATFORM", "DRY_RUN", "[VERSION]"],
    "deploy.sh": [
        "NAMESPACE",
        "REGISTRY",
        "USE_PVC",
        "DEPLOY_SERVICEMONITOR",
        "DRY_RUN",
        "[VERSION]",
    ],
    "undeploy.sh": ["NAMESPACE", "DELETE_PVC", "DELETE_IMAGE", "FORCE", "DRY_RUN"],
}


@pytest.mark.parametrize("name", SCRIPT_NAMES)
@pytest.mark.parametrize("option", ["--help", "-h"])
def test_help_documents_every_variable(name, option, tmp_path):
    result = run_script(name, option, tmpdir=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"Usage: scripts/{name}" in result.stdout
    for word in DOCUMENTED[name]:
        assert word in result.stdout
    assert not result.stdout.startswith("#")


@pytest.mark.parametrize(
    ("name", "args", "env", "message"),
    [
        ("deploy.sh", [], {"USE_PVC": "yes"}, "USE_PVC must be true or false"),
        ("deploy.sh", [], {"NAMESPACE": "Edge_NS"}, "not a valid namespace"),
        ("deploy.sh", ["--force"], {}, "unknown option"),
        ("deploy.sh", ["1.0", "2.0"], {}, "too many arguments"),
        ("deploy.sh", ["v1/2"], {}, "VERSION 'v1/2'"),
        ("deploy.sh", [], {"REGISTRY": "https://registry.example.com"}, "REGISTRY"),
        ("build.sh", [], {"PUSH": "true"}, "PUSH=true needs REGISTRY"),
        ("build.sh", [], {"PLATFORM": "linux/amd64,linux/arm64"}, "set PUSH=true"),
        ("build.sh", [], {"DRY_RUN": "1"}, "DRY_RUN must be true or false"),
        ("undeploy.sh", ["extra"], {}, "too many arguments"),
        ("undeploy.sh", [], {"DELETE_PVC": "TRUE"}, "DELETE_PVC must be true or false"),
    ],
)
def test_invalid_settings_are_refused_before_anything_runs(name, args, env, message, tmp_path):
    result = run_script(name, *args, env={"DRY_RUN": "true", **env}, tmpdir=tmp_path)
    assert result.returncode != 0
    assert message in result.stderr
    assert result.stdout == ""


# --- build.sh --------------------------------------------------------------------------


def expected_build(*, registry: str, push: bool, platform: str) -> list[list[str]]:
    image = f"{registry + '/' if registry else ''}edge-metrics-server:{VERSION}"
    label = ["--label", f"org.opencontainers.image.version={VERSION}"]
    if platform:
        output = "--push" if push else "--load"
        build = ["docker", "buildx", "build", "--platform", platform, "--tag", image]
        return [[*build, *label, output, ROOT_WORD]]
    commands = [["docker", "build", "--tag", image, *label, ROOT_WORD]]
    if push:
        commands.append(["docker", "push", image])
    return commands


BUILD_COMBINATIONS = list(
    itertools.product(["", REGISTRY], [False, True], ["", "linux/arm64", "linux/amd64,linux/arm64"])
)


@pytest.mark.parametrize(("registry", "push", "platform"), BUILD_COMBINATIONS)
def test_build_dry_run_prints_the_docker_commands(registry, push, platform, tmp_path):
    env = {"DRY_RUN": "true", "PUSH": str(push).lower()}
    if registry:
        env["REGISTRY"] = registry
    if platform:
        env["PLATFORM"] = platform
    result = run_script("build.sh", env=env, tmpdir=tmp_path)
    if push and not registry:
        assert result.returncode == 1
        assert "PUSH=true needs REGISTRY" in result.stderr
    elif "," in platform and not push:
        assert result.returncode == 1
        assert "cannot be loaded into the local Docker" in result.stderr
    else:
        assert result.returncode == 0, result.stderr
        assert result.commands() == expected_build(registry=registry, push=push, platform=platform)


def test_build_tags_the_given_version(tmp_path):
    result = run_script(
        "build.sh", "2.1.0-rc.1", env={"DRY_RUN": "true", "REGISTRY": REGISTRY}, tmpdir=tmp_path
    )
    assert result.commands()[0][3] == f"{REGISTRY}/edge-metrics-server:2.1.0-rc.1"


# --- deploy.sh, dry run ----------------------------------------------------------------


def expected_deploy(*, namespace: str, registry: str, servicemonitor: bool) -> list[list[str]]:
    ns = ["--namespace", namespace]
    commands = expected_build(registry=registry, push=bool(registry), platform="")
    commands.append(
        words(
            f"kubectl get namespace {namespace} >/dev/null 2>&1 || "
            f"kubectl create namespace {namespace}"
        )
    )
    if servicemonitor:
        commands.append(
            ["kubectl", "get", "servicemonitors.monitoring.coreos.com", *ns, "-o", "name"]
        )
    commands += [
        ["kubectl", "apply", "-k", "<overlay>"],
        ["kubectl", "rollout", "status", "deployment/edge-metrics-server", *ns, "--timeout=5m"],
        [
            "kubectl",
            "get",
            "secret",
            "edge-metrics-server",
            *ns,
            "-o",
            "jsonpath={.data.API_TOKENS}",
        ],
        ["kubectl", "logs", "deployment/edge-metrics-server", *ns],
    ]
    return commands


def deploy_dry_run(tmp_path: Path, env: dict[str, str], *args: str) -> tuple[list, Path]:
    """Run deploy.sh with DRY_RUN=true: its command lines and the overlay it would apply."""
    result = run_script("deploy.sh", *args, env={"DRY_RUN": "true", **env}, tmpdir=tmp_path)
    assert result.returncode == 0, result.stderr
    commands = result.commands()
    (apply,) = [c for c in commands if c[:3] == ["kubectl", "apply", "-k"]]
    overlay = Path(apply[3])
    assert overlay.parent == tmp_path  # a temporary copy: manifests/ is never edited
    apply[3] = "<overlay>"
    return commands, overlay


DEPLOY_COMBINATIONS = list(
    itertools.product(["", "other"], ["", REGISTRY], [True, False], [False, True])
)


def combination_id(values: Any) -> str:
    namespace, registry, use_pvc, servicemonitor = values
    return "-".join(
        [
            f"ns={namespace or 'default'}",
            "registry" if registry else "local",
            "pvc" if use_pvc else "emptydir",
            "servicemonitor" if servicemonitor else "no-servicemonitor",
        ]
    )


def strings_in(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for key, item in value.items() for s in [key, *strings_in(item)]]
    if isinstance(value, list):
        return [s for item in value for s in strings_in(item)]
    return [value] if isinstance(value, str) else []


@pytest.mark.parametrize(
    ("namespace", "registry", "use_pvc", "servicemonitor"),
    DEPLOY_COMBINATIONS,
    ids=[combination_id(c) for c in DEPLOY_COMBINATIONS],
)
def test_deploy_dry_run_plans_and_renders_each_combination(
    namespace, registry, use_pvc, servicemonitor, tmp_path
):
    env = {"USE_PVC": str(use_pvc).lower(), "DEPLOY_SERVICEMONITOR": str(servicemonitor).lower()}
    if namespace:
        env["NAMESPACE"] = namespace
    if registry:
        env["REGISTRY"] = registry
    commands, overlay = deploy_dry_run(tmp_path, env)
    target = namespace or "monitoring"
    assert commands == expected_deploy(
        namespace=target, registry=registry, servicemonitor=servicemonitor
    )
    assert not (ROOT / "manifests" / "base").exists()

    objects = kustomize(overlay)
    kinds = [o["kind"] for o in objects]
    expected_kinds = ["ServiceAccount", "Role", "RoleBinding", "ConfigMap", "Service"]
    expected_kinds += (
        ["PersistentVolumeClaim", "Deployment", "CronJob"] if use_pvc else ["Deployment"]
    )
    expected_kinds += ["ServiceMonitor"] if servicemonitor else []
    assert kinds == expected_kinds
    index = by_kind(objects)
    for obj in objects:
        assert obj["metadata"]["namespace"] == target
        assert STANDARD_LABELS.items() <= obj["metadata"]["labels"].items()
        assert obj["metadata"]["labels"]["app.kubernetes.io/version"] == VERSION
        if obj["kind"] != "ServiceMonitor":
            for version in KUBERNETES_VERSIONS:
                validate_schema(obj, version)
    assert index["RoleBinding"]["subjects"][0]["namespace"] == target
    image = f"{registry + '/' if registry else ''}edge-metrics-server:{VERSION}"
    for kind in ("Deployment", "CronJob"):
        if kind in index:
            assert pod_spec(index[kind])["containers"][0]["image"] == image
    data = {v["name"]: v for v in pod_spec(index["Deployment"])["volumes"]}["data"]
    if use_pvc:
        assert data == {
            "name": "data",
            "persistentVolumeClaim": {"claimName": "edge-metrics-server-data"},
        }
        assert "K8S_AUTO_SYNC" not in index["ConfigMap"]["data"]
    else:
        assert data == {"name": "data", "emptyDir": {"sizeLimit": "1Gi"}}
        # No CronJob can reach an emptyDir: the server reconciles by itself.
        assert index["ConfigMap"]["data"]["K8S_AUTO_SYNC"] == "true"
    if servicemonitor:
        assert index["ServiceMonitor"]["spec"]["namespaceSelector"] == {"matchNames": [target]}


def test_namespace_other_moves_every_object_and_the_rolebinding_subject(tmp_path):
    _, overlay = deploy_dry_run(
        tmp_path, {"NAMESPACE": "other", "DEPLOY_SERVICEMONITOR": "true", "USE_PVC": "true"}
    )
    objects = kustomize(overlay)
    assert {o["metadata"]["namespace"] for o in objects} == {"other"}
    (binding,) = [o for o in objects if o["kind"] == "RoleBinding"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "edge-metrics-server", "namespace": "other"}
    ]
    # No trace of the default namespace anywhere (the CRD group name aside).
    leftovers = [s for o in objects for s in strings_in(o) if "monitoring" in s]
    assert set(leftovers) <= {"monitoring.coreos.com/v1", "monitoring.coreos.com"}, leftovers


def test_deploy_uses_the_given_version_for_image_and_label(tmp_path):
    _, overlay = deploy_dry_run(tmp_path, {"REGISTRY": REGISTRY}, "2.1.0")
    index = by_kind(kustomize(overlay))
    container = pod_spec(index["Deployment"])["containers"][0]
    assert container["image"] == f"{REGISTRY}/edge-metrics-server:2.1.0"
    assert index["Deployment"]["metadata"]["labels"]["app.kubernetes.io/version"] == "2.1.0"
    # Selectors stay as they were: a version change must not orphan the pods.
    assert "app.kubernetes.io/version" not in index["Deployment"]["spec"]["selector"]["matchLabels"]


def test_deploy_dry_run_tells_how_to_reach_the_server_and_find_the_token(tmp_path):
    result = run_script("deploy.sh", env={"DRY_RUN": "true", "NAMESPACE": "edge"}, tmpdir=tmp_path)
    assert "nothing was changed" in result.stderr
    assert "port-forward service/edge-metrics-server 8081:8081" in result.stderr
    assert "http://edge-metrics-server.edge.svc:8081" in result.stderr
    assert "grep 'Bootstrap operator token'" in result.stderr
    assert "kind load docker-image edge-metrics-server:" in result.stderr


# --- undeploy.sh, dry run --------------------------------------------------------------


def expected_undeploy(*, namespace: str, delete_pvc: bool, delete_image: bool) -> list[list[str]]:
    ns = f"--namespace {namespace}"
    instance = "--selector app.kubernetes.io/instance=edge-metrics-server"
    monitors = "servicemonitors.monitoring.coreos.com"
    lines = []
    if delete_image:
        lines.append(
            f"kubectl get deployment/edge-metrics-server {ns} "
            "-o 'jsonpath={.spec.template.spec.containers[0].image}'"
        )
    lines += [
        f"kubectl get {monitors} {ns} -o name >/dev/null 2>&1 && "
        f"kubectl delete {monitors}/edge-exporters {ns} --ignore-not-found",
        "kubectl delete cronjob/edge-metrics-sync deployment/edge-metrics-server "
        f"service/edge-metrics-server configmap/edge-metrics-server {ns} --ignore-not-found",
        f"kubectl wait --for=delete pod {instance} {ns} --timeout=60s",
    ]
    if delete_pvc:
        lines.append(
            "kubectl delete persistentvolumeclaim/edge-metrics-server-data "
            f"{ns} --ignore-not-found --wait=false"
        )
    lines.append(
        "kubectl delete rolebinding/edge-metrics-manager role/edge-metrics-manager "
        f"serviceaccount/edge-metrics-server {ns} --ignore-not-found"
    )
    if delete_image:
        lines.append("docker image rm '<image of deployment/edge-metrics-server>'")
    lines += [
        "kubectl get all,configmap,persistentvolumeclaim,serviceaccount,role,rolebinding "
        f"{instance} {ns}",
        f"kubectl get secret/edge-metrics-server {ns} --ignore-not-found",
        "kubectl get services,endpoints,endpointslices.discovery.k8s.io "
        f"--selector managed_by=edge-metrics-server {ns}",
    ]
    return [words(line) for line in lines]


UNDEPLOY_COMBINATIONS = list(
    itertools.product(["", "other"], [False, True], [False, True], [False, True])
)


@pytest.mark.parametrize(
    ("namespace", "delete_pvc", "delete_image", "force"), UNDEPLOY_COMBINATIONS
)
def test_undeploy_dry_run_prints_the_reverse_order(
    namespace, delete_pvc, delete_image, force, tmp_path
):
    env = {
        "DRY_RUN": "true",
        "DELETE_PVC": str(delete_pvc).lower(),
        "DELETE_IMAGE": str(delete_image).lower(),
        "FORCE": str(force).lower(),
    }
    if namespace:
        env["NAMESPACE"] = namespace
    result = run_script("undeploy.sh", env=env, tmpdir=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.commands() == expected_undeploy(
        namespace=namespace or "monitoring", delete_pvc=delete_pvc, delete_image=delete_image
    )


# --- the real paths, against recording kubectl and docker ------------------------------


class FakeCluster:
    def __init__(self, tmp_path: Path):
        self.state = tmp_path / "state"
        self.state.mkdir()
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        fake = Path(__file__).parent / "support" / "fake_cli.py"
        for program in ("kubectl", "docker"):
            wrapper = self.bin / program
            wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{fake}" {program} "$@"\n')
            wrapper.chmod(0o755)
        self.env = {"FAKE_STATE": str(self.state), "REAL_KUBECTL": tool("kubectl")}
        self.tmp_path = tmp_path

    def run(self, name: str, *args: str, env: dict[str, str] | None = None, stdin: str = ""):
        return run_script(
            name,
            *args,
            env={**self.env, **(env or {})},
            tmpdir=self.tmp_path,
            stdin=stdin,
            path_prefix=self.bin,
        )

    def calls(self) -> list[list[str]]:
        log = self.state / "calls.jsonl"
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]

    def verbs(self) -> list[str]:
        return [" ".join(call[:3]) for call in self.calls()]


@pytest.fixture
def cluster(tmp_path) -> FakeCluster:
    return FakeCluster(tmp_path)


BOOTSTRAP_LOG = (
    "[INFO] Starting gunicorn\n"
    "Bootstrap operator token (shown once, stored hashed): ems_abc123\n"
    "  use it as: curl -H 'Authorization: Bearer ems_abc123' http://x/config\n"
)


def test_deploy_creates_a_missing_namespace_and_prints_the_bootstrap_token(cluster):
    result = cluster.run(
        "deploy.sh", env={"FAKE_NAMESPACE_EXISTS": "false", "FAKE_LOGS": BOOTSTRAP_LOG}
    )
    assert result.returncode == 0, result.stderr
    assert ["kubectl", "create", "namespace", "monitoring"] in cluster.calls()
    assert "Bootstrap operator token (shown once, stored hashed): ems_abc123" in result.stderr
    assert cluster.verbs()[0] == "docker build --tag"
    assert "docker push" not in " ".join(cluster.verbs())


def test_deploy_leaves_an_existing_namespace_and_names_the_secret_tokens(cluster):
    tokens = base64.b64encode(b"ems_from_secret").decode()
    result = cluster.run(
        "deploy.sh", env={"FAKE_NAMESPACE_EXISTS": "true", "FAKE_API_TOKENS": tokens}
    )
    assert result.returncode == 0, result.stderr
    assert not any(call[1] == "create" for call in cluster.calls() if call[0] == "kubectl")
    assert "API_TOKENS from the Secret edge-metrics-server" in result.stderr
    assert "ems_from_secret" not in result.stdout + result.stderr


def test_deploy_applies_what_its_dry_run_planned_and_removes_its_overlay(cluster, tmp_path):
    env = {"NAMESPACE": "edge", "REGISTRY": REGISTRY, "USE_PVC": "false"}
    dry = tmp_path / "dry"
    dry.mkdir()
    planned_commands, overlay = deploy_dry_run(dry, env)
    planned_objects = kustomize(overlay)

    result = cluster.run("deploy.sh", env=env)
    assert result.returncode == 0, result.stderr
    applied = [d for d in yaml.safe_load_all((cluster.state / "applied.yaml").read_text()) if d]
    assert applied == planned_objects
    calls = cluster.calls()
    (apply,) = [c for c in calls if c[:3] == ["kubectl", "apply", "-k"]]
    assert not Path(apply[3]).exists()
    apply[3] = "<overlay>"
    # The namespace exists here: its check runs, the create does not.
    expected = [c[: c.index(">/dev/null")] if ">/dev/null" in c else c for c in planned_commands]
    assert calls == expected


def test_deploy_with_servicemonitor_stops_when_the_crd_is_missing(cluster):
    result = cluster.run(
        "deploy.sh", env={"DEPLOY_SERVICEMONITOR": "true", "FAKE_SERVICEMONITOR_CRD": "false"}
    )
    assert result.returncode == 1
    assert "no ServiceMonitor CRD" in result.stderr
    assert not any(call[:2] == ["kubectl", "apply"] for call in cluster.calls())


def test_deploy_fails_with_a_hint_when_the_rollout_does_not_finish(cluster):
    result = cluster.run("deploy.sh", env={"FAKE_ROLLOUT_OK": "false"})
    assert result.returncode == 1
    assert "the rollout did not finish" in result.stderr
    assert "logs deployment/edge-metrics-server" in result.stderr


def test_build_pushes_after_building(cluster):
    result = cluster.run("build.sh", "3.0.0", env={"REGISTRY": REGISTRY, "PUSH": "true"})
    assert result.returncode == 0, result.stderr
    image = f"{REGISTRY}/edge-metrics-server:3.0.0"
    assert cluster.calls() == [
        [
            "docker",
            "build",
            "--tag",
            image,
            "--label",
            "org.opencontainers.image.version=3.0.0",
            ROOT_WORD,
        ],
        ["docker", "push", image],
    ]


def deleted(cluster: FakeCluster) -> list[str]:
    return [
        word for call in cluster.calls() if call[:2] == ["kubectl", "delete"] for word in call[2:]
    ]


@pytest.mark.parametrize("answer", ["", "n\n", "no\n"])
def test_undeploy_deletes_nothing_unless_confirmed(cluster, answer):
    result = cluster.run("undeploy.sh", stdin=answer)
    assert result.returncode == 1
    assert "not confirmed; nothing was deleted" in result.stderr
    assert deleted(cluster) == []


def test_undeploy_deletes_in_reverse_order_when_confirmed_and_keeps_the_pvc(cluster):
    result = cluster.run("undeploy.sh", env={"NAMESPACE": "edge"}, stdin="y\n")
    assert result.returncode == 0, result.stderr
    assert "Continue? [y/N]" in result.stderr
    assert deleted(cluster) == [
        "servicemonitors.monitoring.coreos.com/edge-exporters",
        "--namespace", "edge", "--ignore-not-found",
        "cronjob/edge-metrics-sync", "deployment/edge-metrics-server",
        "service/edge-metrics-server", "configmap/edge-metrics-server",
        "--namespace", "edge", "--ignore-not-found",
        "rolebinding/edge-metrics-manager", "role/edge-metrics-manager",
        "serviceaccount/edge-metrics-server", "--namespace", "edge", "--ignore-not-found",
    ]  # fmt: skip
    assert "the PVC edge-metrics-server-data" in result.stderr


def test_undeploy_skips_the_servicemonitor_without_its_crd(cluster):
    result = cluster.run("undeploy.sh", env={"FORCE": "true", "FAKE_SERVICEMONITOR_CRD": "false"})
    assert result.returncode == 0, result.stderr
    assert not any("servicemonitors" in word for word in deleted(cluster))


def test_undeploy_with_delete_pvc_warns_and_wants_the_namespace_typed(cluster):
    refused = cluster.run("undeploy.sh", env={"DELETE_PVC": "true"}, stdin="y\n")
    assert refused.returncode == 1
    assert "will be DELETED" in refused.stderr
    assert "every device config, revision and API token" in refused.stderr
    assert deleted(cluster) == []

    confirmed = cluster.run("undeploy.sh", env={"DELETE_PVC": "true"}, stdin="monitoring\n")
    assert confirmed.returncode == 0, confirmed.stderr
    assert "persistentvolumeclaim/edge-metrics-server-data" in deleted(cluster)


def test_undeploy_force_asks_nothing_and_removes_the_deployed_image(cluster):
    image = f"{REGISTRY}/edge-metrics-server:2.0.0"
    result = cluster.run(
        "undeploy.sh", env={"FORCE": "true", "DELETE_IMAGE": "true", "FAKE_IMAGE": image}
    )
    assert result.returncode == 0, result.stderr
    assert "Continue?" not in result.stderr
    assert ["docker", "image", "rm", image] in cluster.calls()
    # The image is read before the Deployment is deleted.
    calls = cluster.calls()
    read = calls.index(
        [
            *("kubectl", "get", "deployment/edge-metrics-server", "--namespace", "monitoring"),
            *("-o", "jsonpath={.spec.template.spec.containers[0].image}"),
        ]
    )
    assert read < next(
        i
        for i, c in enumerate(calls)
        if "deployment/edge-metrics-server" in c[2:] and c[1] == "delete"
    )
