"""A rollout outlives its leader: two replicas on one PostgreSQL database, the leader
killed (SIGKILL, its whole process group) while a rollout waits between waves; the other
replica takes over and the rollout completes where it was, each device applied once."""

from __future__ import annotations

import os
import signal

import pytest
from django.conf import settings

from tests.support.gunicorn import (
    RunningServer,
    fresh_database,
    migrate,
    server_env,
    start_gunicorn,
    stop_gunicorn,
    wait_ready,
)
from tests.support.rollout_fleet import FAST_MONITOR, Fleet, wait_until
from tests.test_rollouts_e2e import NEW, OLD, at

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not settings.DATABASE_URL.startswith("postgres"),
        reason="replicas share a PostgreSQL database: the PostgreSQL pass runs this",
    ),
]

# Leadership shortened as in tests/test_replicas.py: a crashed leader's lease runs out in 4 s.
LEADERSHIP = {
    "LEADER_ELECTION": "database",
    "LEADER_LEASE_DURATION": "4",
    "LEADER_RENEW_DEADLINE": "3",
    "LEADER_RETRY_PERIOD": "1",
}
WAVE_WAIT = 8


def _leads(server: RunningServer) -> bool:
    try:
        return server.request("GET", "/health", auth=False, timeout=2).json()["leader"]
    except Exception:
        return False


def test_a_leader_killed_between_waves_and_the_rollout_completes_on_the_next(tmp_path):
    with fresh_database(tmp_path) as db_env:
        env = server_env(db_env, workers=2, **FAST_MONITOR, **LEADERSHIP)
        migrate(env)
        servers = []

        def start(index: int) -> RunningServer:
            replica = {"POD_NAME": f"replica-{index}", "RUNTIME_DIR": str(tmp_path / f"r{index}")}
            log = tmp_path / f"replica-{index}.log"
            server = start_gunicorn({**env, **replica}, log, own_process_group=True)
            servers.append(server)
            wait_ready(server, 90)
            return server

        first = start(0)
        wait_until(lambda: _leads(first), 30, "the first replica leads")
        second = start(1)
        fleet = Fleet(second)  # exporters and the operator talk to the one that survives
        try:
            ids = [f"edge-{n}" for n in range(4)]
            for device_id in ids:
                fleet.add(device_id)
            fleet.wait_status("healthy")
            fleet.put_profile("lab", OLD)
            started = fleet.start_rollout(
                "lab", NEW, canary=1, waves=[50, 100], wave_wait_seconds=WAVE_WAIT,
                confirm_timeout_seconds=15,
            )  # fmt: skip
            body = fleet.wait_rollout(
                started["id"], lambda b: b["canary"]["completed_at"], what="canary confirmed"
            )
            assert body["waves"][0]["started_at"] is None, "the kill must come between waves"
            os.killpg(first.process.pid, signal.SIGKILL)
            first.process.wait()
            servers.remove(first)
            wait_until(lambda: _leads(second), 30, "the second replica leads")

            body = fleet.wait_rollout(started["id"], lambda b: b["status"] != "running", 120)
            assert body["status"] == "succeeded", body
            assert set(fleet.states(body).values()) == {"confirmed"}
            # The wait the dead leader began was kept: the next wave came after it.
            canary_done = at(body["canary"]["completed_at"])
            wave_started = at(body["waves"][0]["started_at"])
            assert (wave_started - canary_done).total_seconds() >= WAVE_WAIT
            for device_id, exporter in fleet.exporters.items():
                assert len(fleet.rollout_notes(device_id)) == 1, fleet.history(device_id)
                assert exporter.running_config["interval"] == 5
        finally:
            fleet.close()
            for server in servers:
                stop_gunicorn(server, timeout=15)
