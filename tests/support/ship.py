"""Tools for the container and deployment tests: the linters, kustomize and the schema
validator come from PyPI wheels in the dev extra (no Docker engine or cluster needed)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
SCRIPTS = ROOT / "scripts"
# Oldest and newest Kubernetes the manifests must be valid for.
KUBERNETES_VERSIONS = ("1.24.0", "1.33.0")
STANDARD_LABELS = {
    "app.kubernetes.io/name": "edge-metrics-server",
    "app.kubernetes.io/instance": "edge-metrics-server",
    "app.kubernetes.io/part-of": "edge-metrics",
}


def tool(name: str) -> str:
    """A command-line tool from the dev extra (installed next to this Python)."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is missing: install the dev extra (make test does)")
    return found


def project_version() -> str:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def kustomize(directory: Path) -> list[dict[str, Any]]:
    """What `kubectl apply -k directory` would send, in the order it would send it."""
    result = subprocess.run(
        [tool("kubectl"), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def validate_schema(obj: dict[str, Any], version: str) -> None:
    """Strict OpenAPI validation for `version` (unknown fields are errors)."""
    kubernetes_validate.validate(obj, version, strict=True)


def by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    index: dict[str, dict[str, Any]] = {}
    for obj in objects:
        assert obj["kind"] not in index, f"two objects of kind {obj['kind']}"
        index[obj["kind"]] = obj
    return index


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return obj["spec"]["template"]["spec"]


@dataclass
class ScriptRun:
    returncode: int
    stdout: str
    stderr: str

    def commands(self) -> list[list[str]]:
        """The printed plan (DRY_RUN=true), one command line per entry, split into words."""
        return [shlex.split(line) for line in self.stdout.splitlines() if line.strip()]


def run_script(
    name: str,
    *args: str,
    env: dict[str, str] | None = None,
    tmpdir: Path,
    stdin: str | None = None,
    path_prefix: Path | None = None,
) -> ScriptRun:
    """Run scripts/<name> with a clean environment: only PATH, TMPDIR and `env`."""
    path = os.environ.get("PATH", "/usr/bin:/bin")
    if path_prefix is not None:
        path = f"{path_prefix}:{path}"
    full_env = {"PATH": path, "TMPDIR": str(tmpdir), "LC_ALL": "C.UTF-8", **(env or {})}
    result = subprocess.run(
        [str(SCRIPTS / name), *args],
        env=full_env,
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=120,
    )
    return ScriptRun(result.returncode, result.stdout, result.stderr)
