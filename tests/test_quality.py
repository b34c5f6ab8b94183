"""The code stays lint-clean, the migrations match the models, and the code keeps its
shape: modules and functions of a readable size, layers that point one way."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_is_clean():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "."], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.django_db
def test_migrations_match_models():
    from django.core.management import call_command

    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


# ---- the shape of the code: one module per concept, layers that point one way ----------

PACKAGES = ("edgeserver", "users", "devices", "k8sbridge", "rollouts")
MODULE_LIMIT = 500
FUNCTION_LIMIT = 60


def production_modules() -> list[Path]:
    return sorted(
        path
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.parts
    )


def imported_packages(path: Path) -> set[str]:
    """The top-level packages a module imports (at module level or inside functions)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_no_production_module_is_over_500_lines():
    long = {
        str(path.relative_to(ROOT)): n
        for path in production_modules()
        if (n := len(path.read_text().splitlines())) > MODULE_LIMIT
    }
    assert not long, long


def test_no_function_is_over_60_lines():
    long = [
        f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)"
        for path in production_modules()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and (length := node.end_lineno - node.lineno + 1) > FUNCTION_LIMIT
    ]
    assert not long, long


# Which project packages each may import; edgeserver composes the apps only in urls.py and
# wsgi.py (the URLconf and the WSGI application are where the apps meet).
ALLOWED_IMPORTS = {
    "edgeserver": {"edgeserver"},
    "users": {"edgeserver", "users"},
    "devices": {"edgeserver", "users", "devices"},
    "k8sbridge": {"edgeserver", "users", "devices", "k8sbridge"},
    "rollouts": {"edgeserver", "users", "devices", "rollouts"},
}
COMPOSITION_ROOTS = {ROOT / "edgeserver" / "urls.py", ROOT / "edgeserver" / "wsgi.py"}


def test_layers_point_one_way():
    wrong = []
    for path in production_modules():
        if path in COMPOSITION_ROOTS:
            continue
        package = path.relative_to(ROOT).parts[0]
        used = imported_packages(path) & set(PACKAGES)
        if used - ALLOWED_IMPORTS[package]:
            wrong.append(
                f"{path.relative_to(ROOT)} imports {sorted(used - ALLOWED_IMPORTS[package])}"
            )
    assert not wrong, wrong


def test_a_process_that_never_talks_to_kubernetes_never_loads_its_client():
    """The official client is ~35 MB of imports: the device monitor without K8S_AUTO_SYNC
    and the management commands go without it, though the bridge's modules (admin, API
    views, the auto-sync listener) are imported everywhere."""
    script = (
        "import sys, django; django.setup(); "
        "from django.urls import get_resolver; get_resolver().url_patterns; "
        "from devices.monitor import load_listeners; load_listeners(); "
        "print('kubernetes.client' in sys.modules)"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "edgeserver.settings"}
    env.pop("DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
