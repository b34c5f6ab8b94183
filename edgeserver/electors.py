"""The electors of the database: a PostgreSQL advisory lock, or a lock file beside an
SQLite database; and none at all (every replica leads: one server, or tests).

The Kubernetes Lease elector is the Kubernetes bridge's (k8sbridge/lease.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connections

from edgeserver.db import dedicated_connection

logger = logging.getLogger(__name__)

_NAME = "edge-metrics-server-leader"
# The advisory lock's two keys (classid, objid): derived from the name, stable across
# releases, so every replica of every version locks the same one.
_KEY = hashlib.sha256(_NAME.encode()).digest()
CLASS_ID = int.from_bytes(_KEY[:4], "big", signed=True)
OBJECT_ID = int.from_bytes(_KEY[4:8], "big", signed=True)


class NoElection:
    """LEADER_ELECTION=none: this replica leads, whatever the others do."""

    def __init__(self, identity: str) -> None:
        self.identity = identity

    def try_acquire_or_renew(self) -> bool:
        return True

    def release(self) -> None:
        pass

    def holder(self) -> str | None:
        return self.identity


class LockFileElector:
    """An flock on `<database>.leader`: the kernel releases it when its holder dies."""

    def __init__(self, identity: str, path: Path) -> None:
        self.identity = identity
        self.path = path
        self._fd: int | None = None

    def try_acquire_or_renew(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.pwrite(fd, self.identity.encode(), 0)
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def holder(self) -> str | None:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:  # somebody holds it: its name is in the file
            return os.pread(fd, 256, 0).decode(errors="replace") or None
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)


class AdvisoryLockElector:
    """A session-level advisory lock on a connection of its own. PostgreSQL releases it
    when that session ends: its holder died, or (keepalives, idle_session_timeout) stopped
    answering."""

    HELD = (
        "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND classid::int = %s "
        "AND objid::int = %s AND objsubid = 2 AND pid = pg_backend_pid() AND granted"
    )
    HOLDER = (
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.classid::int = %s AND l.objid::int = %s "
        "AND l.objsubid = 2 AND l.granted"
    )

    def __init__(self, identity: str) -> None:
        self.identity = identity
        self._connection: Any = None
        self._held = False

    def _connect(self) -> Any:
        import psycopg

        connection = dedicated_connection(
            f"ems-leader:{self.identity}", timeout=settings.LEADER_RENEW_DEADLINE / 2
        )
        # PostgreSQL ends the session, which releases the lock, once its holder has been
        # silent for LEADER_LEASE_DURATION (frozen: idle_session_timeout; cut off: TCP
        # keepalives), never sooner: by then the holder stopped leading (renew deadline).
        lease = int(settings.LEADER_LEASE_DURATION)
        for name, value in (
            ("idle_session_timeout", lease * 1000),
            ("statement_timeout", int(settings.LEADER_RETRY_PERIOD * 1000)),
            ("tcp_keepalives_interval", 1),
            ("tcp_keepalives_count", 3),
            ("tcp_keepalives_idle", max(1, lease - 3)),
        ):
            try:
                connection.execute(f"SET {name} = {int(value)}")
            except psycopg.errors.UndefinedObject:  # idle_session_timeout: PostgreSQL 14+
                logger.info("PostgreSQL has no %s; a frozen leader keeps the lock", name)
        return connection

    def try_acquire_or_renew(self) -> bool:
        try:
            if self._connection is None or self._connection.closed:
                self._held = False
                self._connection = self._connect()
            if self._held:
                self._held = (
                    self._connection.execute(self.HELD, (CLASS_ID, OBJECT_ID)).fetchone()
                    is not None
                )
            else:
                row = self._connection.execute(
                    "SELECT pg_try_advisory_lock(%s, %s)", (CLASS_ID, OBJECT_ID)
                ).fetchone()
                self._held = bool(row and row[0])
        except Exception:
            self._close()
            raise
        return self._held

    def _close(self) -> None:
        connection, self._connection, self._held = self._connection, None, False
        if connection is not None:
            with contextlib.suppress(Exception):  # it is being dropped anyway
                connection.close()

    def release(self) -> None:
        if self._connection is not None and self._held:
            self._connection.execute("SELECT pg_advisory_unlock(%s, %s)", (CLASS_ID, OBJECT_ID))
        self._close()

    def holder(self) -> str | None:
        with connections["default"].cursor() as cursor:
            cursor.execute(self.HOLDER, (CLASS_ID, OBJECT_ID))
            row = cursor.fetchone()
        return row[0].removeprefix("ems-leader:") if row else None


def database_elector(identity: str) -> AdvisoryLockElector | LockFileElector | NoElection:
    """On PostgreSQL an advisory lock; beside an SQLite file a lock file (every server on
    that file shares the machine); an in-memory database has one server only."""
    connection = connections["default"]
    if connection.vendor == "postgresql":
        return AdvisoryLockElector(identity)
    name = str(connection.settings_dict["NAME"])
    if connection.is_in_memory_db():
        return NoElection(identity)
    return LockFileElector(identity, Path(f"{name}.leader"))
