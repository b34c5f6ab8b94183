"""Several replicas on one PostgreSQL database, end to end: real gunicorn servers, a real
exporter stand-in counting probes, a fake Kubernetes API server for the Lease mode, and a
readiness-aware TCP load balancer for the rolling restart.

Leadership timings are shortened (lease 4 s, renew deadline 3 s, retry 1 s) so the suite
stays quick; what is checked is the relation the issue states (takeover within lease +
retry after a crash, within 2 s after SIGTERM), which holds for the defaults the same way.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from django.conf import settings

from edgeserver.runstate import LEADER_FILE
from tests.support.balancer import Balancer
from tests.support.exporters import FakeExporter
from tests.support.gunicorn import (
    ROOT,
    RunningServer,
    fresh_database,
    migrate,
    server_env,
    start_gunicorn,
    stop_gunicorn,
    wait_ready,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not settings.DATABASE_URL.startswith("postgres"),
        reason="replicas share a PostgreSQL database: the PostgreSQL pass runs these",
    ),
]

LEASE, RENEW, RETRY = 4.0, 3.0, 1.0
TIMINGS = {
    "LEADER_LEASE_DURATION": str(LEASE),
    "LEADER_RENEW_DEADLINE": str(RENEW),
    "LEADER_RETRY_PERIOD": str(RETRY),
    "MONITOR_INTERVAL": "1",
}


class Replicas:
    def __init__(self, tmp_path: Path, base_env: dict[str, str]) -> None:
        self.tmp_path = tmp_path
        self.base_env = base_env
        self.servers: list[RunningServer] = []
        self._started = 0

    def start(self, count: int = 1) -> list[RunningServer]:
        started = []
        for _ in range(count):
            index = self._started
            self._started += 1
            env = {
                **self.base_env,
                "POD_NAME": f"replica-{index}",
                "RUNTIME_DIR": str(self.tmp_path / f"run-{index}"),
            }
            started.append(
                start_gunicorn(env, self.tmp_path / f"replica-{index}.log", own_process_group=True)
            )
        for server in started:
            wait_ready(server, 90)
        for server in started:
            self.wait_in_election(server)
        self.servers += started
        return started

    @staticmethod
    def wait_in_election(server: RunningServer, timeout: float = 60) -> None:
        """Until the server's monitor has taken part in the election once (it has written
        whether it leads): a server answers requests before its monitor has started, and a
        handover timed from then would time the monitor's start-up, not the handover."""
        state = Path(server.env["RUNTIME_DIR"]) / LEADER_FILE
        deadline = time.monotonic() + timeout
        while not state.exists():
            assert time.monotonic() < deadline, f"{server.url}: no election within {timeout}s"
            time.sleep(0.05)

    def stop(self, server: RunningServer) -> None:
        stop_gunicorn(server)
        self.servers.remove(server)

    def crash(self, server: RunningServer) -> None:
        """kill -9 the master, its workers and its monitor at once."""
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait()
        self.servers.remove(server)

    def leaders(self) -> list[RunningServer]:
        found = []
        for server in self.servers:
            try:
                if server.request("GET", "/health", auth=False, timeout=2).json()["leader"]:
                    found.append(server)
            except requests.RequestException:
                pass
        return found

    def wait_for_one_leader(self, timeout: float = 20, not_: RunningServer | None = None):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leaders = self.leaders()
            if len(leaders) == 1 and leaders[0] is not not_:
                return leaders[0]
            time.sleep(0.05)
        raise AssertionError(f"no single leader within {timeout}s: {self.leaders()}")

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.tmp_path.glob("*.log"))


@contextmanager
def replicas(tmp_path: Path, count: int = 3, **extra: str) -> Iterator[Replicas]:
    with fresh_database(tmp_path) as db_env:
        env = server_env(db_env, workers=2, **TIMINGS, **extra)
        migrate(env)
        group = Replicas(tmp_path, env)
        try:
            group.start(count)
            yield group
        finally:
            for server in list(group.servers):
                stop_gunicorn(server, timeout=15)


@pytest.fixture
def kube_env(tmp_path) -> Iterator[dict[str, str]]:
    from tests.support.kube_api import serve

    with serve() as fake:
        kubeconfig = fake.write_kubeconfig(tmp_path / "kubeconfig")
        yield {"LEADER_ELECTION": "kubernetes", "KUBECONFIG": str(kubeconfig), "fake": fake}


MODES = ["database", "kubernetes"]


@contextmanager
def replicas_in(mode: str, tmp_path: Path, request, count: int = 3) -> Iterator[Replicas]:
    if mode == "kubernetes":
        env = dict(request.getfixturevalue("kube_env"))
        env.pop("fake")
    else:
        env = {"LEADER_ELECTION": "database"}
    with replicas(tmp_path, count, **env) as group:
        yield group


def _put(server: RunningServer, device_id: str, body: dict) -> requests.Response:
    return server.request("PUT", f"/config/{device_id}", json=body)


def test_three_servers_one_leader_one_probe_per_interval(tmp_path):
    exporter = FakeExporter()
    probes: list[float] = []
    exporter.on_request = lambda method, path: (
        probes.append(time.monotonic()) if path == "/health" else None
    )
    try:
        with replicas(tmp_path) as group:
            leader = group.wait_for_one_leader()
            time.sleep(2 * RETRY)  # and it stays one
            assert group.leaders() == [leader]
            metrics = {s.url: s.request("GET", "/metrics").text for s in group.servers}
            assert "\nems_leader 1.0" in metrics[leader.url]
            followers = [s for s in group.servers if s is not leader]
            assert all("\nems_leader 0.0" in metrics[s.url] for s in followers)

            # A device created through a replica that does not lead is probed within 2 s.
            created = time.monotonic()
            body = {
                "device_type": "jetson_orin",
                "ip_address": "127.0.0.1",
                "reload_port": exporter.port,
            }
            assert _put(followers[0], "jetson-1", body).status_code == 200
            while not probes and time.monotonic() - created < 5:
                time.sleep(0.02)
            assert probes and probes[0] - created <= 2.0

            # Then one probe per interval: three monitors, one of them probing.
            time.sleep(1.5)
            window_start = time.monotonic()
            time.sleep(6)
            in_window = [t for t in probes if t >= window_start]
            assert 4 <= len(in_window) <= 8, in_window
            status = followers[1].request("GET", "/devices/jetson-1/status").json()
            assert status["status"] == "healthy"
    finally:
        exporter.close()


@pytest.mark.parametrize("mode", MODES)
def test_kill_9_the_leader_another_leads_within_lease_plus_retry(mode, tmp_path, request):
    with replicas_in(mode, tmp_path, request) as group:
        leader = group.wait_for_one_leader()
        group.crash(leader)
        killed = time.monotonic()
        successor = group.wait_for_one_leader(timeout=3 * LEASE)
        took = time.monotonic() - killed
        # The bound, plus the 50 ms this test polls /health at.
        assert took <= LEASE + RETRY + 0.25, f"{mode}: took {took:.2f}s"
        assert successor in group.servers


@pytest.mark.parametrize("mode", MODES)
def test_sigterm_the_leader_hands_over_within_2s(mode, tmp_path, request):
    with replicas_in(mode, tmp_path, request) as group:
        leader = group.wait_for_one_leader()
        leader.process.terminate()
        asked = time.monotonic()
        group.servers.remove(leader)
        group.wait_for_one_leader(timeout=3 * LEASE)
        took = time.monotonic() - asked
        assert took <= 2.0, f"{mode}: took {took:.2f}s"
        assert leader.process.wait(timeout=30) == 0
        assert "is no longer the leader" in leader.log()


def test_fifty_concurrent_writes_over_three_servers_keep_a_contiguous_history(tmp_path):
    with replicas(tmp_path) as group:
        servers = group.servers
        assert _put(servers[0], "shared", {"device_type": "jetson_orin"}).status_code == 200

        def write(i: int) -> int:
            body = {"device_type": "jetson_orin", "extra_config": {"n": i}}
            return _put(servers[i % 3], "shared", body).status_code

        with ThreadPoolExecutor(50) as pool:
            codes = list(pool.map(write, range(50)))
        assert codes == [200] * 50
        history = servers[1].request("GET", "/config/shared/history").json()
        assert sorted(r["version"] for r in history["revisions"]) == list(range(1, 52))
        seen = {r["config"]["extra_config"]["n"] for r in history["revisions"][:-1]}
        assert seen == set(range(50))


def test_a_write_on_one_server_is_never_read_stale_on_another(tmp_path):
    with replicas(tmp_path, count=2) as group:
        writer, reader = group.servers
        stale = []
        for i in range(500):
            body = {"device_type": "jetson_orin", "extra_config": {"n": i}}
            assert _put(writer, "fresh", body).status_code == 200
            served = reader.request("GET", "/config/fresh").json()
            if served.get("extra_config", {}).get("n") != i:
                stale.append((i, served.get("extra_config")))
        assert stale == []


def test_rolling_restart_under_32_pollers_fails_no_request(tmp_path):
    balancer = Balancer()
    with replicas(tmp_path) as group:
        for server in group.servers:
            balancer.add(server.url)
        assert _put(group.servers[0], "polled", {"device_type": "jetson_orin"}).status_code == 200
        deadline = time.monotonic() + 10
        while len(balancer.ready()) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)

        stop = threading.Event()
        failures: list[str] = []
        answered = [0] * 32

        def poll(n: int) -> None:
            session = requests.Session()
            while not stop.is_set():
                try:
                    response = session.get(f"{balancer.url}/config/polled", timeout=10)
                    if response.status_code != 200:
                        failures.append(f"HTTP {response.status_code}")
                    else:
                        answered[n] += 1
                except requests.RequestException as exc:
                    failures.append(repr(exc))

        pollers = [threading.Thread(target=poll, args=(n,)) for n in range(32)]
        for thread in pollers:
            thread.start()
        try:
            for old in list(group.servers):
                # maxSurge 1, maxUnavailable 0: the new pod is ready before the old one goes.
                (new,) = group.start(1)
                balancer.add(new.url)
                while new.url not in balancer.ready():
                    time.sleep(0.05)
                # preStop: drain (readiness fails, connections close), then SIGTERM.
                drained = subprocess.run(
                    [sys.executable, "-m", "edgeserver.drain", "--pause", "1.5"],
                    cwd=ROOT,
                    env=old.env,
                    timeout=30,
                )
                assert drained.returncode == 0
                # The balancer looks at every backend in turn (each look bounded by its
                # timeout): on a loaded machine one round can outlast the pause, as a
                # Kubernetes readiness period can. The old server keeps answering until
                # it is out, which is what the pause is for.
                deadline = time.monotonic() + 10
                while old.url in balancer.ready() and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert old.url not in balancer.ready()
                group.stop(old)
                balancer.remove(old.url)
        finally:
            stop.set()
            for thread in pollers:
                thread.join(timeout=30)
            balancer.close()
        assert failures == []
        assert all(count > 0 for count in answered)
        group.wait_for_one_leader()


def test_readiness_and_connections_while_draining(tmp_path):
    """What the load balancer and the clients see of a draining server."""
    with replicas(tmp_path, count=1) as group:
        (server,) = group.servers
        session = requests.Session()
        assert session.get(f"{server.url}/health/ready").json() == {"status": "ready"}
        assert session.get(f"{server.url}/health").headers.get("Connection") != "close"
        drained = subprocess.run(
            [sys.executable, "-m", "edgeserver.drain"], cwd=ROOT, env=server.env, timeout=30
        )
        assert drained.returncode == 0
        time.sleep(0.5)
        ready = session.get(f"{server.url}/health/ready")
        assert ready.status_code == 503
        assert ready.json()["error"] == "draining"
        answer = session.get(f"{server.url}/health")
        assert answer.status_code == 200
        assert answer.headers["Connection"] == "close"
