"""The container image: Dockerfile facts, lint, build context, the installed package, the
health check and the entrypoint. No Docker engine here: the entrypoint is run for real
against a layout shaped like the image's (read-only code, writable /data and /tmp only)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest
import requests

from tests.support.ship import ROOT, SCRIPTS, tool

DOCKERFILE = ROOT / "Dockerfile"
ENTRYPOINT = SCRIPTS / "docker-entrypoint.sh"
PACKAGES = ("edgeserver", "users", "devices", "k8sbridge", "rollouts")


@dataclass
class Instruction:
    keyword: str
    arguments: str


def dockerfile_stages() -> list[list[Instruction]]:
    """The Dockerfile's instructions (continuations joined), grouped by build stage."""
    lines: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    stages: list[list[Instruction]] = []
    for line in lines:
        keyword, _, arguments = line.partition(" ")
        instruction = Instruction(keyword.upper(), arguments.strip())
        if instruction.keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def instructions(stage: list[Instruction], keyword: str) -> list[str]:
    return [i.arguments for i in stage if i.keyword == keyword]


def test_hadolint_finds_nothing():
    result = subprocess.run(
        [tool("hadolint"), str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dependencies_are_built_in_a_builder_stage():
    builder, runtime = dockerfile_stages()
    assert builder[0].arguments.endswith(" AS builder")
    assert "python:3.11-slim" in DOCKERFILE.read_text()
    assert any("install --no-deps ." in run for run in instructions(builder, "RUN"))
    assert "--from=builder /opt/venv /opt/venv" in instructions(runtime, "COPY")
    # The runtime stage installs nothing: no compiler, no pip run, no curl.
    assert not any("pip install" in run or "apt-get" in run for run in instructions(runtime, "RUN"))


def test_runtime_runs_as_uid_1000_with_data_volume_and_port():
    runtime = dockerfile_stages()[-1]
    assert instructions(runtime, "USER") == ["1000:1000"]
    env = " ".join(instructions(runtime, "ENV"))
    for setting in ("DB_PATH=/data/config.db", "PORT=8081", "PYTHONDONTWRITEBYTECODE=1"):
        assert setting in env
    assert instructions(runtime, "VOLUME") == ['["/data"]']
    assert instructions(runtime, "EXPOSE") == ["8081"]
    assert any("useradd --uid 1000 --gid 1000" in run for run in instructions(runtime, "RUN"))
    assert any("install -d -o 1000 -g 1000" in run for run in instructions(runtime, "RUN"))


def test_static_files_are_collected_at_build_time_without_a_baked_secret():
    builder, runtime = dockerfile_stages()
    (run,) = [r for r in instructions(builder, "RUN") if "collectstatic" in r]
    assert "SECRET_KEY=" in run  # else settings would write /data/.secret_key into the image
    assert "STATIC_ROOT=/opt/staticfiles" in run
    assert "/opt/staticfiles /app/staticfiles" in " ".join(instructions(runtime, "COPY"))
    assert "STATIC_ROOT=/app/staticfiles" in " ".join(instructions(runtime, "ENV"))


def test_the_image_installs_exactly_the_hashed_lock_into_a_venv_without_pip():
    builder, runtime = dockerfile_stages()
    runs = instructions(builder, "RUN")
    assert "python -m venv --without-pip /opt/venv" in runs
    (install,) = [r for r in runs if "requirements.lock" in r]
    assert "--require-hashes" in install and "--no-deps" in install
    assert not any("pip install" in r for r in instructions(runtime, "RUN"))


def _requirement_pins() -> dict[str, tuple[str, int]]:
    """requirements.lock as {name: (version, number of hashes)}."""
    pins: dict[str, tuple[str, int]] = {}
    name = ""
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line and not line.startswith((" ", "#", "-")):
            name, _, version = line.split()[0].partition("==")
            pins[canonical(name)] = (version, 0)
        elif "--hash=sha256:" in line and name:
            version, hashes = pins[canonical(name)]
            pins[canonical(name)] = (version, hashes + 1)
    return pins


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_the_lock_pins_every_dependency_within_its_range_with_hashes():
    """requirements.lock is what `make lock` makes of pyproject.toml: a change of the
    dependencies without `make lock` fails here."""
    import tomllib

    from packaging.requirements import Requirement

    pins = _requirement_pins()
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for text in declared:
        requirement = Requirement(text)
        name = canonical(requirement.name)
        assert name in pins, f"{name} is not in requirements.lock: run make lock"
        assert requirement.specifier.contains(pins[name][0]), (name, pins[name][0])
    assert all(hashes for _, hashes in pins.values()), "a pin without hashes"
    text = (ROOT / "requirements.lock").read_text()
    assert "--find-links" not in text and "--index-url" not in text


def healthcheck_command() -> list[str]:
    (healthcheck,) = instructions(dockerfile_stages()[-1], "HEALTHCHECK")
    _, _, exec_form = healthcheck.partition(" CMD ")
    return json.loads(exec_form)


def test_healthcheck_needs_python_only():
    command = healthcheck_command()
    assert command[:2] == ["python", "-c"]
    assert "curl" not in DOCKERFILE.read_text() and "wget" not in DOCKERFILE.read_text()


def test_healthcheck_passes_on_a_healthy_server_and_fails_on_none(server):
    code = healthcheck_command()[2]
    port = server.url.rsplit(":", 1)[1]
    healthy = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, "PORT": port}, timeout=30
    )
    assert healthy.returncode == 0
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed_port = str(unused.getsockname()[1])
    down = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PORT": closed_port},
        capture_output=True,
        timeout=30,
    )
    assert down.returncode != 0


def test_entrypoint_is_copied_executable_and_runs_migrate_then_gunicorn():
    runtime = dockerfile_stages()[-1]
    assert (
        "--chmod=0755 scripts/docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh"
        in instructions(runtime, "COPY")
    )
    assert instructions(runtime, "ENTRYPOINT") == ['["docker-entrypoint.sh"]']
    assert instructions(runtime, "CMD") == ['["gunicorn", "--config", "/app/gunicorn.conf.py"]']
    mode = subprocess.run(
        ["git", "ls-files", "--stage", "scripts/docker-entrypoint.sh"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[0]
    assert mode == "100755"
    assert os.access(ENTRYPOINT, os.X_OK)


# --- build context ---------------------------------------------------------------------


def dockerignore_excludes(path: str) -> bool:
    """Docker's .dockerignore rule: the last pattern matching the path or a parent wins."""
    excluded = False
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex += "(.*/)?"
                i += 3
            elif pattern.startswith("**", i):
                regex += ".*"
                i += 2
            elif pattern[i] == "*":
                regex += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                regex += "[^/]"
                i += 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                regex += pattern[i : end + 1]
                i = end + 1
            else:
                regex += re.escape(pattern[i])
                i += 1
        parts = path.split("/")
        candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
        if any(re.fullmatch(regex, candidate) for candidate in candidates):
            excluded = not negate
    return excluded


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".git/HEAD",
        "tests/test_config_api.py",
        "devices/tests/test_models.py",
        "config.db",
        "config.db-wal",
        ".secret_key",
        "edgeserver/__pycache__/settings.cpython-311.pyc",
        "staticfiles/admin/css/base.css",
        ".pytest_cache/README.md",
        ".ruff_cache/CACHEDIR.TAG",
        "edge_metrics_server.egg-info/PKG-INFO",
        "manifests/deployment.yaml",
        "scripts/deploy.sh",
        "Makefile",
    ],
)
def test_build_context_leaves_out(path):
    assert dockerignore_excludes(path)


def test_build_context_has_everything_the_dockerfile_copies():
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    sources = [
        word
        for stage in dockerfile_stages()
        for args in instructions(stage, "COPY")
        if "--from=" not in args
        for word in args.split()[:-1]
        if not word.startswith("--")
    ]
    assert sources
    for source in sources:
        files = [f for f in tracked if f == source or f.startswith(source.rstrip("/") + "/")]
        assert files, f"COPY {source}: nothing tracked there"
        kept = [f for f in files if not dockerignore_excludes(f)]
        assert kept, f"COPY {source}: .dockerignore leaves it out"
        for f in files:
            assert not dockerignore_excludes(f) or "/tests/" in f, f


# --- the installed package -------------------------------------------------------------


def test_installed_package_carries_every_file_the_apps_need(tmp_path):
    """The image runs `pip install .`, not the source tree: templates and other data files
    must be in the wheel, or the container misses them."""
    tracked = subprocess.run(
        ["git", "ls-files", "--", *PACKAGES, "pyproject.toml", "README.md"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    tree = tmp_path / "src"
    for name in tracked:
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, tree / name)
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps"),
            *("--no-build-isolation", "--wheel-dir", str(tmp_path / "dist"), str(tree)),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    in_wheel = set(zipfile.ZipFile(wheel).namelist())
    needed = {name for name in tracked if name.startswith(PACKAGES) and "/tests/" not in name}
    assert "edgeserver/gunicorn.conf.py" in needed
    assert needed <= in_wheel, sorted(needed - in_wheel)


# --- the entrypoint, for real ----------------------------------------------------------

# Runs a command the way the container does with readOnlyRootFilesystem: in a private
# mount namespace where the data directory and /tmp (the pod's emptyDir) stay writable and
# everything else on the root filesystem is read-only. /tmp is bound to itself rather than
# replaced by an empty tmpfs, so a checkout or virtualenv that lives under /tmp (a CI
# workspace, say) stays visible.
READ_ONLY_ROOT = """
set -eu
mount --make-rprivate /
mount --bind "$DATA_DIR" "$DATA_DIR"
mount --bind /tmp /tmp
mount -o remount,bind,ro /
exec "$@"
"""


def read_only_root_available() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "--mount", "sh", "-c", "mount --make-rprivate / && mount -o remount,bind,ro /"],
        capture_output=True,
        timeout=30,
    )
    return probe.returncode == 0


@dataclass
class ImageLayout:
    root: Path
    app: Path
    data: Path
    env: dict[str, str]


@contextmanager
def image_like_layout() -> Iterator[ImageLayout]:
    """/app (manage.py, gunicorn.conf.py, collected static files), /data, and the image's
    environment. Kept off /tmp, which the read-only run replaces with a tmpfs."""
    results = ROOT / ".test-results"
    results.mkdir(exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="image-", dir=results))
    try:
        app, data = root / "app", root / "data"
        app.mkdir()
        data.mkdir()
        shutil.copy2(ROOT / "manage.py", app / "manage.py")
        import edgeserver

        conf = Path(edgeserver.__file__).with_name("gunicorn.conf.py")
        (app / "gunicorn.conf.py").symlink_to(conf)
        env = {
            "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(app),
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            "DJANGO_SETTINGS_MODULE": "edgeserver.settings",
            "DB_PATH": str(data / "config.db"),
            "STATIC_ROOT": str(app / "staticfiles"),
            "WEB_CONCURRENCY": "2",
        }
        subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
            cwd=app,
            env={**env, "SECRET_KEY": "collectstatic-only"},
            check=True,
            timeout=300,
        )
        yield ImageLayout(root, app, data, env)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.e2e
def test_entrypoint_migrates_and_serves_on_a_read_only_root_filesystem():
    if not read_only_root_available():
        pytest.skip("needs mount namespaces (root, util-linux unshare) for a read-only root")
    with image_like_layout() as layout:
        app_before = sorted(p.name for p in layout.app.iterdir())
        port = free_port()
        log_path = layout.root / "server.log"
        # The image's CMD, bound to loopback for the test.
        command = [str(ENTRYPOINT), "gunicorn", "--config", str(layout.app / "gunicorn.conf.py")]
        command += ["--bind", f"127.0.0.1:{port}"]
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                ["unshare", "--mount", "sh", "-c", READ_ONLY_ROOT, "sh", *command],
                cwd=layout.app,
                env={**layout.env, "DATA_DIR": str(layout.data)},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 90
            health = None
            while health is None and time.monotonic() < deadline:
                assert process.poll() is None, log_path.read_text()
                try:
                    health = requests.get(url + "/health", timeout=2)
                except requests.ConnectionError:
                    time.sleep(0.2)
            assert health is not None, log_path.read_text()
            body = health.json()
            assert isinstance(body.pop("leader"), bool)  # its monitor may not lead yet
            assert body == {
                "status": "healthy",
                "service": "config-server",
                "version": metadata.version("edge-metrics-server"),
            }
            # exec all the way: the process the container runtime signals is gunicorn.
            cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes().split(b"\0")
            assert any(b"gunicorn" in part for part in cmdline)
            assert not any(b"docker-entrypoint" in part for part in cmdline)
            # Migrated; the bootstrap token was printed once and works.
            printed = re.search(
                r"Bootstrap operator token \(shown once, stored hashed\): (\S+)",
                log_path.read_text(),
            )
            assert printed, log_path.read_text()
            configs = requests.get(
                url + "/config", headers={"Authorization": f"Bearer {printed[1]}"}, timeout=10
            )
            assert configs.status_code == 200
            assert configs.json() == {"configs": [], "total": 0}
            # The admin's CSS, served from the hashed files collected at build time.
            login = requests.get(url + "/admin/login/", timeout=10)
            assert login.status_code == 200
            css = re.search(r'href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"', login.text)
            assert css, login.text[:2000]
            assert requests.get(url + css[1], timeout=10).status_code == 200
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                returncode = process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                raise
        assert returncode == 0, log_path.read_text()
        assert "Read-only file system" not in log_path.read_text()
        # What was written went to /data: the database and the generated secret key (0600).
        assert (layout.data / "config.db").exists()
        assert stat.S_IMODE((layout.data / ".secret_key").stat().st_mode) == 0o600
        assert sorted(p.name for p in layout.app.iterdir()) == app_before


def test_entrypoint_runs_other_commands_as_given(tmp_path):
    result = subprocess.run(
        [str(ENTRYPOINT), "python", "-c", "import sys; print('ran', sys.argv[1:])", "x"],
        env={"PATH": os.environ["PATH"], "DB_PATH": str(tmp_path / "never-created.db")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ran ['x']\n"
    assert not (tmp_path / "never-created.db").exists()  # no migrate for other commands


def test_entrypoint_runs_migrations_before_a_management_command(tmp_path):
    """`docker run … python manage.py create_api_token` on a fresh volume: the schema is
    made first, so the command finds its tables."""
    with image_like_layout() as layout:
        result = subprocess.run(
            [str(ENTRYPOINT), "python", "manage.py", "create_api_token", "--name", "me"],
            cwd=layout.app,
            env={**layout.env, "SECRET_KEY": "test"},
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("ems_")


@pytest.mark.skipif(os.geteuid() != 0, reason="switches to uid 1000 (needs root)")
def test_an_unwritable_data_directory_is_explained_not_a_traceback(tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o755)  # root's, as a host directory bind-mounted into the container
    tmp_path.chmod(0o755)
    result = subprocess.run(
        ["setpriv", "--reuid", "1000", "--regid", "1000", "--clear-groups", str(ENTRYPOINT)],
        env={"PATH": os.environ["PATH"], "DB_PATH": str(data / "config.db")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert f"cannot write to {data} as uid 1000" in result.stderr
    assert "chown 1000:1000" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="switches to uid 1000 (needs root)")
def test_settings_explain_an_unwritable_directory_too(tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    tmp_path.chmod(0o755)
    code = "import django; django.setup()"
    result = subprocess.run(
        [
            "setpriv",
            "--reuid",
            "1000",
            "--regid",
            "1000",
            "--clear-groups",
            sys.executable,
            "-c",
            code,
        ],
        cwd=ROOT,
        env={
            "PATH": os.environ["PATH"],
            "DJANGO_SETTINGS_MODULE": "edgeserver.settings",
            "DB_PATH": str(data / "config.db"),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert f"{data} is not writable by uid 1000" in result.stderr
    assert "chown 1000:1000" in result.stderr
