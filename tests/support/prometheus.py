"""A real Prometheus (Debian's `prometheus` package: /usr/bin/prometheus and promtool) for
the alert-rule and monitoring tests: the shipped rules as a rule file, and a server
started on loopback with its own data directory.

Without the package these tests are skipped, unless REQUIRE_PROMETHEUS=1 (CI) makes the
absence a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.support.ship import MANIFESTS, kustomize


def tool(name: str) -> str:
    """`prometheus` or `promtool` from PATH (or /usr/bin); skips the test without them."""
    found = shutil.which(name) or (
        f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None
    )
    if found is None:
        message = f"{name} is missing: apt-get install prometheus"
        if os.environ.get("REQUIRE_PROMETHEUS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return found


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [tool("promtool"), *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def rendered_rule(tmp_path: Path, overlay: str | None = None) -> dict[str, Any]:
    """The PrometheusRule as `kubectl apply -k` sends it: the base with the component, or
    the overlay text given (its kustomization.yaml, beside a copy of manifests/)."""
    root = tmp_path / "kustomize"
    shutil.copytree(MANIFESTS, root / "manifests")
    (root / "overlay").mkdir()
    (root / "overlay" / "kustomization.yaml").write_text(
        overlay
        or "apiVersion: kustomize.config.k8s.io/v1beta1\n"
        "kind: Kustomization\n"
        "resources: [../manifests]\n"
        "components: [../manifests/components/prometheusrule]\n"
    )
    (rule,) = [o for o in kustomize(root / "overlay") if o["kind"] == "PrometheusRule"]
    return rule


def rules_of(rule: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for group in rule["spec"]["groups"] for r in group["rules"]]


def write_rule_file(rule: dict[str, Any], path: Path) -> Path:
    """The PrometheusRule's groups as a Prometheus rule file (what the Operator loads)."""
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}, sort_keys=False))
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RunningPrometheus:
    def __init__(self, url: str, process: subprocess.Popen, log_path: Path) -> None:
        self.url = url
        self.process = process
        self.log_path = log_path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def api(self, path: str, **params: Any) -> Any:
        response = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return self.api("query", query=expr)["result"]

    def eventually(self, check, *, timeout: float, what: str, interval: float = 0.5):
        """Poll `check()` until it returns something truthy; fail after `timeout` seconds
        with `what` and the last value seen."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = check()
            if last:
                return last
            time.sleep(interval)
        pytest.fail(f"{what} within {timeout} s; last: {last!r}\n{self.log()[-3000:]}")


@contextmanager
def run_prometheus(
    tmp_path: Path, config: dict[str, Any], rule_files: list[Path] = ()
) -> Iterator[RunningPrometheus]:
    """Prometheus on a free loopback port with `config` (prometheus.yml as a dict), its
    own data directory, and `rule_files`; stopped afterwards."""
    directory = tmp_path / "prometheus"
    directory.mkdir()
    config = {**config, "rule_files": [str(path) for path in rule_files]}
    (directory / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    log_path = directory / "prometheus.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                tool("prometheus"),
                f"--config.file={directory / 'prometheus.yml'}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--web.enable-lifecycle",
                "--log.level=info",
            ],
            cwd=directory,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    running = RunningPrometheus(f"http://127.0.0.1:{port}", process, log_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"prometheus exited with {process.returncode}:\n{running.log()}")
            try:
                if requests.get(f"{running.url}/-/ready", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"prometheus did not become ready:\n{running.log()}")
            time.sleep(0.2)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


DASHBOARD = MANIFESTS / "components" / "grafana-dashboard" / "edge-metrics-fleet.json"
# What Grafana puts in place of its variables before a query reaches Prometheus: the
# dashboard's own ($device_type, "All" is its allValue) and Grafana's built-in intervals.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "6h",
    "$device_type": ".*",
}


def dashboard() -> dict[str, Any]:
    import json

    return json.loads(DASHBOARD.read_text())


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, those inside rows included, rows themselves not."""
    found = []
    for panel in board["panels"]:
        if panel["type"] == "row":
            found += panel.get("panels", [])
        else:
            found.append(panel)
    return found


def panel_queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL as Grafana sends it) for every query of every panel."""
    queries = []
    for panel in panels(board):
        for target in panel["targets"]:
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            queries.append((f"{panel['title']} / {target['refId']}", expr))
    return queries
