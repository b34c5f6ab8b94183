"""Start the server as production does (gunicorn + edgeserver/gunicorn.conf.py) on a fresh
database, for end-to-end tests over real sockets."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
TEST_TOKEN = "ems_test_operator_token_0123456789"


@dataclass
class RunningServer:
    url: str
    token: str
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen
    session: requests.Session = field(default_factory=requests.Session)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def request(self, method: str, path: str, *, auth: bool = True, **kwargs) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if auth:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        kwargs.setdefault("timeout", 30)
        return self.session.request(method, self.url + path, headers=headers, **kwargs)

    def manage(self, *args: str) -> subprocess.CompletedProcess:
        """Run `manage.py` against this server's database."""
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )


@contextmanager
def fresh_database(tmp_path: Path, postgres_url: str | None = None) -> Iterator[dict[str, str]]:
    """Environment variables that point a server at an empty database: a new database on
    the PostgreSQL server of `postgres_url` (default: the suite's), else an SQLite file."""
    admin_url = postgres_url if postgres_url is not None else settings.DATABASE_URL
    if not admin_url:
        yield {"DB_PATH": str(tmp_path / "config.db")}
        return
    import psycopg

    name = f"ems_e2e_{secrets.token_hex(6)}"
    parts = urlsplit(admin_url)
    # The suite's own database may not exist (pytest-django creates test_<name>);
    # the maintenance database always does.
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield {"DATABASE_URL": urlunsplit(parts._replace(path=f"/{name}"))}
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _static_root() -> Path:
    """collectstatic once per test session (the manifest the production storage needs)."""
    target = ROOT / ".test-results" / "static"
    manifest = target / "staticfiles.json"
    # Again when an app's static file changed since (a stale manifest makes pages fail).
    apps = ("edgeserver", "devices", "k8sbridge", "users", "rollouts")
    sources = [p for app in apps for p in (ROOT / app).glob("static/**/*") if p.is_file()]
    if not manifest.exists() or any(p.stat().st_mtime > manifest.stat().st_mtime for p in sources):
        subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
            cwd=ROOT,
            env={**_base_env(), "STATIC_ROOT": str(target)},
            check=True,
            timeout=300,
        )
    return target


def _base_env() -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "DB_PATH", "DJANGO_SETTINGS_MODULE", "API_TOKENS"}
    }
    env.update(
        # Never a developer's real cluster; a test that wants one passes KUBECONFIG in `env`.
        KUBECONFIG="/nonexistent/edge-metrics-server-tests/kubeconfig",
        DJANGO_SETTINGS_MODULE="edgeserver.settings",
        SECRET_KEY="e2e-secret-key",
        DEVICE_ALLOWED_NETWORKS="127.0.0.0/8,::1/128",
        PYTHONUNBUFFERED="1",
    )
    return env


@contextmanager
def run_server(
    tmp_path: Path,
    env: dict[str, str] | None = None,
    *,
    workers: int = 2,
    ready_timeout: float = 60,
    postgres_url: str | None = None,
) -> Iterator[RunningServer]:
    """Migrate a fresh database and serve it with gunicorn on a loopback port (a new
    database on the PostgreSQL server of `postgres_url` when given)."""
    with fresh_database(tmp_path, postgres_url) as db_env:
        full_env = server_env(db_env, workers, **(env or {}))
        migrate(full_env)
        server = start_gunicorn(full_env, tmp_path / "gunicorn.log")
        try:
            _wait_ready(server, ready_timeout)
            yield server
        finally:
            stop_gunicorn(server)


def migrate(full_env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr


def server_env(db_env: dict[str, str], workers: int = 2, **extra: str) -> dict[str, str]:
    """The environment `run_server` gives gunicorn, for tests that start several."""
    return {
        **_base_env(),
        "API_TOKENS": TEST_TOKEN,
        "STATIC_ROOT": str(_static_root()),
        "WEB_CONCURRENCY": str(workers),
        **db_env,
        **extra,
    }


def start_gunicorn(
    full_env: dict[str, str], log_path: Path, *, own_process_group: bool = False
) -> RunningServer:
    """gunicorn on a free loopback port with `full_env` (its database migrated already);
    returns at once: `wait_ready` waits for its first answer. In a process group of its
    own, `os.killpg` kills the master, its workers and its monitor at once (a crash)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    listener.set_inheritable(True)
    port = listener.getsockname()[1]
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                "edgeserver/gunicorn.conf.py",
                "-b",
                f"fd://{listener.fileno()}",
            ],
            cwd=ROOT,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            pass_fds=(listener.fileno(),),
            start_new_session=own_process_group,
        )
    listener.close()
    return RunningServer(
        url=f"http://127.0.0.1:{port}",
        token=full_env.get("API_TOKENS", TEST_TOKEN).split(",")[0],
        env=full_env,
        log_path=log_path,
        process=process,
    )


def stop_gunicorn(server: RunningServer, timeout: float = 30) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
    server.session.close()


def wait_ready(server: RunningServer, timeout: float = 60) -> None:
    _wait_ready(server, timeout)


def _wait_ready(server: RunningServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {server.process.returncode}:\n{server.log()}")
        try:
            if requests.get(server.url + "/health", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"gunicorn did not become ready in {timeout}s:\n{server.log()}")
