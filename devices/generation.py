"""The generation of the served configs: a counter every committed config write changes,
whichever process or replica made it, so each process knows when what it cached may be
stale (devices.served).

- SQLite: a small file beside the database (`config.db.generation`), mapped into memory;
  reading it costs a memory read, no system call.
- PostgreSQL (several replicas on several hosts): a sequence, `devices_config_generation`,
  advanced after each config write commits and before the write is answered. Every served
  config reads it afresh (one round trip on the thread's own connection), so once any
  replica answered a write no replica serves the config it replaced.

Anything that changes configs must go through devices.services (every write there bumps
the counter); a change made by hand in the database is seen after a restart (SQLite) or
the next write (PostgreSQL).
"""

from __future__ import annotations

import functools
import logging
import mmap
import os
import struct
import threading

from django.core.signals import setting_changed
from django.db import connection

logger = logging.getLogger(__name__)

SEQUENCE = "devices_config_generation"
_COUNTER = struct.Struct("<Q")


class MappedCounter:
    """SQLite: the shared counter in a file; one mapping per process (remapped after a fork)."""

    def __init__(self) -> None:
        self._map: mmap.mmap | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()

    def _mapped(self) -> mmap.mmap:
        if self._map is None or self._pid != os.getpid():
            with self._lock:
                if self._map is None or self._pid != os.getpid():
                    path = f"{connection.settings_dict['NAME']}.generation"
                    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
                    try:
                        if os.fstat(fd).st_size < _COUNTER.size:
                            os.ftruncate(fd, _COUNTER.size)
                        self._map = mmap.mmap(fd, _COUNTER.size)
                    finally:
                        os.close(fd)
                    self._pid = os.getpid()
        return self._map

    def read(self) -> int:
        return _COUNTER.unpack_from(self._mapped(), 0)[0]

    def bump(self) -> None:
        """After a config write commits. Writers are serialised by the write queue
        (edgeserver.db), and any change of the value invalidates, so a reader that
        catches a half-written value only misses the cache once."""
        mapped = self._mapped()
        _COUNTER.pack_into(mapped, 0, (_COUNTER.unpack_from(mapped, 0)[0] + 1) % 2**64)


class SequenceCounter:
    """PostgreSQL: the sequence, read on the calling thread's own database connection.

    Each served config reads it afresh, one round trip begun after the request arrived.
    Coalescing the reads of the requests that arrive together (one round trip serving all
    of them) was measured and dropped: making each caller wait for a read begun after its
    call cost six times the round trip in locking and wake-ups (bench/README.md)."""

    # Before its first nextval a sequence reads its start value, as after it: count 0.
    READ = f"SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {SEQUENCE}".encode()  # noqa: S608
    BUMP = f"SELECT nextval('{SEQUENCE}')"

    def read(self) -> int:
        from psycopg import OperationalError, pq

        try:
            connection.ensure_connection()
            # libpq's own call: a third of the cost of a cursor. The connection is in
            # autocommit (served configs are not cached inside a transaction), so a bare
            # statement leaves it as psycopg knows it: idle.
            result = connection.connection.pgconn.exec_(self.READ)
            if result.status != pq.ExecStatus.TUPLES_OK:
                message = (result.error_message or b"no answer").decode(errors="replace")
                raise OperationalError(f"Reading the config generation failed: {message}")
            return int(result.get_value(0, 0))
        except Exception:
            # A connection that failed (the server restarted) is dropped, so the next
            # call connects afresh: the fast path has no request end that would drop it.
            connection.close()
            raise

    def bump(self) -> None:
        """After a config write commits, on the writer's connection, before it answers."""
        with connection.cursor() as cursor:
            cursor.execute(self.BUMP)


class ConfigGeneration:
    """The counter of this database, or none (an in-memory SQLite database: the tests')."""

    def __init__(self) -> None:
        self._mapped = MappedCounter()
        self._sequence = SequenceCounter()

    @staticmethod
    @functools.cache
    def _kind() -> str:
        """Asked on every served config: the answer is the database's, so it is read once
        (reading the connection's settings goes through a thread-local each time)."""
        if connection.vendor == "postgresql":
            return "sequence"
        name = str(connection.settings_dict.get("NAME", ""))
        return "mapped" if connection.vendor == "sqlite" and name and "memory" not in name else ""

    def available(self) -> bool:
        return bool(self._kind())

    def _counter(self) -> MappedCounter | SequenceCounter:
        return self._sequence if self._kind() == "sequence" else self._mapped

    def read(self) -> int:
        return self._counter().read()

    def bump(self) -> None:
        self._counter().bump()


generation = ConfigGeneration()
setting_changed.connect(lambda **_: ConfigGeneration._kind.cache_clear(), weak=False)


def config_changed() -> None:
    """Call on commit of every write that may change a served config."""
    if generation.available():
        generation.bump()
