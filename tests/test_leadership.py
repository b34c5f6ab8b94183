"""Leader election pieces, each against what it really talks to: lock files through the
kernel, advisory locks through PostgreSQL, Leases through the fake Kubernetes API server
over HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from edgeserver.electors import AdvisoryLockElector, LockFileElector, NoElection
from edgeserver.leadership import Leadership, build_elector, election_mode
from edgeserver.runstate import Draining, LeaderState, prepare

on_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="advisory locks are PostgreSQL's"
)


# ---- electors -----------------------------------------------------------------------------


def test_lock_file_elector_one_holder_and_release(tmp_path):
    path = tmp_path / "config.db.leader"
    first, second = LockFileElector("a", path), LockFileElector("b", path)
    assert first.try_acquire_or_renew() is True
    assert second.try_acquire_or_renew() is False
    assert second.holder() == "a"
    first.release()
    assert second.holder() is None
    assert second.try_acquire_or_renew() is True
    assert first.try_acquire_or_renew() is False


def test_lock_file_is_released_when_its_holder_is_killed(tmp_path):
    path = tmp_path / "config.db.leader"
    script = (
        "import sys, time; from pathlib import Path; "
        "from edgeserver.electors import LockFileElector; "
        f"assert LockFileElector('child', Path({str(path)!r})).try_acquire_or_renew(); "
        "print('held', flush=True); time.sleep(60)"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "edgeserver.settings"}
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert child.stdout.readline().strip() == "held"
        elector = LockFileElector("parent", path)
        assert elector.try_acquire_or_renew() is False
        assert elector.holder() == "child"
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert elector.try_acquire_or_renew() is True
    finally:
        child.kill()
        child.wait()


@on_postgres
@pytest.mark.django_db(transaction=True)
def test_advisory_lock_one_holder_named_and_released():
    first, second = AdvisoryLockElector("replica-a"), AdvisoryLockElector("replica-b")
    try:
        assert first.try_acquire_or_renew() is True
        assert first.try_acquire_or_renew() is True  # renewing: still held
        assert second.try_acquire_or_renew() is False
        assert second.holder() == "replica-a"
        first.release()
        assert second.try_acquire_or_renew() is True
        assert first.holder() == "replica-b"
    finally:
        first.release()
        second.release()


@on_postgres
@pytest.mark.django_db(transaction=True)
def test_advisory_lock_goes_with_its_session():
    """The holder's session ends (its process died, or PostgreSQL cut it off): the lock is
    free for another at once, and the old holder learns it no longer holds it."""
    first, second = AdvisoryLockElector("replica-a"), AdvisoryLockElector("replica-b")
    try:
        assert first.try_acquire_or_renew() is True
        pid = first._connection.info.backend_pid
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        deadline = time.monotonic() + 5
        while not second.try_acquire_or_renew():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        with pytest.raises(Exception):
            first.try_acquire_or_renew()
        assert first.try_acquire_or_renew() is False  # reconnected, and another holds it
    finally:
        first.release()
        second.release()


@pytest.mark.django_db
def test_election_modes(settings, tmp_path):
    settings.LEADER_ELECTION = "auto"
    assert election_mode() == "database"  # not in a pod
    settings.LEADER_ELECTION = "none"
    assert isinstance(build_elector(), NoElection)
    settings.LEADER_ELECTION = "database"
    expected = AdvisoryLockElector if connection.vendor == "postgresql" else NoElection
    # The suite's SQLite database is in memory: one server, no election.
    assert isinstance(build_elector(), expected)


# ---- leadership ---------------------------------------------------------------------------


class ScriptedElector:
    """An elector whose answers a test sets (the Leadership logic is what is tested)."""

    def __init__(self) -> None:
        self.answer: bool | Exception = True
        self.released = 0

    def try_acquire_or_renew(self) -> bool:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    def release(self) -> None:
        self.released += 1

    def holder(self) -> str | None:
        return None


def test_a_leader_that_cannot_renew_stops_leading_at_the_renew_deadline(settings, tmp_path):
    settings.LEADER_LEASE_DURATION, settings.LEADER_RENEW_DEADLINE = 1.5, 0.6
    elector = ScriptedElector()
    state = LeaderState(tmp_path)
    leadership = Leadership(elector, state=state)
    assert leadership.step() is True and leadership.is_leader() and state.read()
    elector.answer = ConnectionError("API server down")
    assert leadership.step() is True  # within the deadline it still leads
    time.sleep(0.7)
    assert leadership.is_leader() is False  # before anything held could expire
    assert leadership.step() is False
    assert state.read() is False


def test_another_holder_ends_the_leadership_at_once_and_stop_releases_only_a_held_one(
    tmp_path,
):
    elector = ScriptedElector()
    leadership = Leadership(elector, state=LeaderState(tmp_path))
    assert leadership.step() is True
    elector.answer = False
    assert leadership.step() is False
    leadership.stop()
    assert elector.released == 0
    elector.answer = True
    other = Leadership(elector)
    other.step()
    other.stop()
    other.stop()  # twice is harmless
    assert elector.released == 1


def test_leader_state_expires_and_draining_mark(tmp_path):
    prepare(tmp_path)
    state = LeaderState(tmp_path)
    state.write(True, valid_for=0.2)
    assert state.read() is True
    time.sleep(0.25)
    assert state.read() is False  # a monitor that died stops counting as leader
    draining = Draining(tmp_path)
    assert draining.is_set() is False
    Draining(tmp_path).mark()
    time.sleep(0.3)
    assert draining.is_set() is True
    prepare(tmp_path)  # a restarted server starts undrained
    assert not Path(tmp_path / "draining").exists()


# ---- the Lease ----------------------------------------------------------------------------


@pytest.fixture
def lease_timings(settings):
    settings.LEADER_LEASE_DURATION = 2.0
    settings.LEADER_RENEW_DEADLINE = 1.5
    settings.LEADER_RETRY_PERIOD = 0.5


def test_lease_one_holder_renewals_release_and_takeover(kube, lease_timings):
    from k8sbridge.lease import LEASE_NAME, LeaseElector

    first, second = LeaseElector("pod-a"), LeaseElector("pod-b")
    assert first.try_acquire_or_renew() is True
    lease = kube.get("leases", "monitoring", LEASE_NAME)
    assert lease["spec"]["holderIdentity"] == "pod-a"
    assert lease["spec"]["leaseDurationSeconds"] == 2
    assert second.try_acquire_or_renew() is False
    assert second.holder() == "pod-a"
    version = lease["metadata"]["resourceVersion"]
    assert first.try_acquire_or_renew() is True  # a renewal is a write
    renewed = kube.get("leases", "monitoring", LEASE_NAME)
    assert renewed["metadata"]["resourceVersion"] != version
    assert renewed["spec"]["acquireTime"] == lease["spec"]["acquireTime"]
    first.release()
    assert kube.get("leases", "monitoring", LEASE_NAME)["spec"]["holderIdentity"] == ""
    assert second.holder() is None
    assert second.try_acquire_or_renew() is True  # at once, no expiry to wait for
    taken = kube.get("leases", "monitoring", LEASE_NAME)
    assert taken["spec"]["leaseTransitions"] == 1
    assert [c.verb for c in kube.requests(resource="leases")].count("update") >= 3


def test_a_lease_that_is_not_renewed_is_taken_after_its_duration(kube, lease_timings):
    from k8sbridge.lease import LeaseElector

    first, second = LeaseElector("pod-a"), LeaseElector("pod-b")
    assert first.try_acquire_or_renew() is True  # then pod-a dies: no more renewals
    assert second.try_acquire_or_renew() is False
    started = time.monotonic()
    while not second.try_acquire_or_renew():
        assert time.monotonic() - started < 5
        time.sleep(0.1)
    # Expiry is measured from when pod-b first saw the record, never from pod-a's clock.
    assert time.monotonic() - started >= 2.0
    assert first.try_acquire_or_renew() is False


def test_of_two_replicas_racing_for_the_lease_one_wins(kube, lease_timings):
    from k8sbridge.lease import LEASE_NAME, LeaseElector

    first = LeaseElector("pod-a")
    assert first.try_acquire_or_renew() is True
    first.release()
    # Both read the free lease; pod-a's update lands first, pod-b's carries a stale
    # resourceVersion and the API server refuses it (409): pod-b does not lead.
    stale = kube.get("leases", "monitoring", LEASE_NAME)
    assert LeaseElector("pod-a").try_acquire_or_renew() is True
    from k8sbridge.client import kube_api

    with pytest.raises(Exception) as refused:
        kube_api().replace_lease("monitoring", stale, timeout=2)
    assert getattr(refused.value, "status", None) == 409
    assert LeaseElector("pod-b").try_acquire_or_renew() is False


def test_a_forbidden_lease_says_what_to_grant(kube, lease_timings):
    from k8sbridge.lease import LeaseElector

    kube.fail("get", "leases")
    with pytest.raises(RuntimeError, match="LEADER_ELECTION=database") as problem:
        LeaseElector("pod-a").try_acquire_or_renew()
    assert "coordination.k8s.io/leases" in str(problem.value)


@pytest.mark.django_db
def test_the_admin_home_names_the_leader_once(admin_client, settings, tmp_path):
    settings.LEADER_ELECTION = "none"
    page = admin_client.get("/admin/").content.decode()
    assert page.count('id="leader-status"') == 1
    assert '<span class="ems-badge ems-healthy">this replica</span>' in page
    assert "leader election:\n    <code>none</code>" in page
