"""Which replica does the singleton duties (probe rounds, drift checks, pending reloads,
automatic Kubernetes syncs, anything periodic): one leader, elected through the Kubernetes
API (a Lease, provided by the Kubernetes bridge), the database (a PostgreSQL advisory
lock; a lock file beside an SQLite database), or not at all (LEADER_ELECTION).

A leader that cannot renew stops its duties before another can take over: it counts as
leader only until LEADER_RENEW_DEADLINE after its last successful renewal, while what it
holds lasts LEADER_LEASE_DURATION (longer). A replica stopping cleanly releases, so another
takes over at once. Every replica serves every request; only the duties ask `is_leader`.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string

from edgeserver.metrics import LEADERSHIP_CHANGES
from edgeserver.runstate import LeaderState

logger = logging.getLogger(__name__)


class Elector(Protocol):
    """One way to hold the leadership. `try_acquire_or_renew` answers True while this
    replica holds it, False when another one does, and raises when it cannot tell (the
    API server or the database does not answer)."""

    def try_acquire_or_renew(self) -> bool: ...

    def release(self) -> None: ...

    def holder(self) -> str | None:
        """Who holds it now, as that replica named itself (None: nobody)."""


# mode -> dotted path of a factory taking the replica's identity (apps register theirs).
_electors: dict[str, str] = {
    "database": "edgeserver.electors.database_elector",
    "none": "edgeserver.electors.NoElection",
}


def register_elector(mode: str, path: str) -> None:
    _electors[mode] = path


def in_a_pod() -> bool:
    return (
        bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
        and Path("/var/run/secrets/kubernetes.io/serviceaccount/token").is_file()
    )


def election_mode() -> str:
    """LEADER_ELECTION, with `auto` resolved: a Lease in a pod, else the database."""
    mode = settings.LEADER_ELECTION
    if mode == "auto":
        mode = "kubernetes" if in_a_pod() and "kubernetes" in _electors else "database"
    return mode


def identity() -> str:
    """This replica's name: the pod's, else host and server (the gunicorn master's pid)."""
    return settings.POD_NAME or f"{socket.gethostname()}-{os.getppid()}"


def build_elector(mode: str | None = None) -> Elector:
    mode = mode or election_mode()
    if mode not in _electors:
        raise ValueError(f"LEADER_ELECTION={mode}: no elector (known: {', '.join(_electors)})")
    return import_string(_electors[mode])(identity())


class Leadership:
    """Runs an elector in a thread of its own; the duties ask `is_leader()`."""

    def __init__(
        self,
        elector: Elector,
        *,
        on_change: Callable[[bool], None] | None = None,
        state: LeaderState | None = None,
    ) -> None:
        self.elector = elector
        self.on_change = on_change
        self.state = state
        self._leading = False
        self._renewed = float("-inf")
        self._stop = threading.Event()
        self._stopping = threading.Lock()
        self._stopped = False
        self._thread: threading.Thread | None = None

    def _fresh(self) -> bool:
        return time.monotonic() - self._renewed < settings.LEADER_RENEW_DEADLINE

    def is_leader(self) -> bool:
        """True only while the last renewal is younger than LEADER_RENEW_DEADLINE."""
        return self._leading and self._fresh()

    def step(self) -> bool:
        """One attempt to acquire or renew; the leadership as it now stands. Another holder
        ends it at once; no answer ends it when the renew deadline passes."""
        try:
            held = self.elector.try_acquire_or_renew()
        except Exception as exc:
            logger.warning("Leader election: could not renew (%s)", exc)
            held = None
        if held:
            self._renewed = time.monotonic()
        self._set(self.is_leader() if held is None else held)
        if self.state is not None:
            self.state.write(self._leading, valid_for=settings.LEADER_RENEW_DEADLINE)
        return self._leading

    def _set(self, leading: bool) -> None:
        if leading != self._leading:
            self._leading = leading
            logger.info(
                "This replica (%s) %s the leader",
                identity(),
                "is now" if leading else "is no longer",
            )
            LEADERSHIP_CHANGES.labels(to="leader" if leading else "follower").inc()
            if self.on_change is not None:
                self.on_change(leading)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="leader-election", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        # The leader renews every retry period; the others look twice as often, so that
        # a leadership handed over (a clean shutdown) is taken within about a second.
        while not self._stop.is_set():
            leading = self.step()
            period = settings.LEADER_RETRY_PERIOD
            self._stop.wait(period if leading else period / 2)

    def stop(self) -> None:
        """Stop renewing and hand the leadership over at once (a clean shutdown). Safe to
        call more than once and from several threads: each returns once it is done."""
        self._stop.set()
        with self._stopping:
            if self._stopped:
                return
            self._stopped = True
            thread = self._thread
            if thread is not None and thread is not threading.current_thread():
                # A renewal in flight ends within its own timeout (the retry period).
                thread.join(timeout=settings.LEADER_RETRY_PERIOD + 1)
            was_leading = self._leading
            self._set(False)
            if self.state is not None:
                self.state.write(False, valid_for=settings.LEADER_RENEW_DEADLINE)
            if was_leading:
                try:
                    self.elector.release()
                except Exception as exc:
                    logger.warning("Leader election: could not release (%s)", exc)
