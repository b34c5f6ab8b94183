"""The generation of the served configs: a counter every committed config write changes,
whichever process or replica made it, so each process knows when what it cached may be
stale (devices.served).

- SQLite: a small file beside the database (`config.db.generation`), mapped into memory;
  reading it costs a memory read, no system call.
- PostgreSQL (several replicas on several hosts): a sequence, `devices_config_generation`,
  advanced after each config write commits and before the write is answered. A process
  reads it afresh for every served config, so once any replica answered a write no replica
  serves the config it replaced; the requests that arrive together share one read.

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
from collections.abc import Callable
from typing import Any

from django.core.signals import setting_changed
from django.db import connection

from edgeserver.db import dedicated_connection

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


class SharedReads:
    """Reads of a value that must not predate the call: each caller gets what a read begun
    after its call returned. Callers that arrive while a read is under way wait for the
    next one, which serves them all: one round trip per burst instead of one per caller."""

    def __init__(self, read: Callable[[], int]) -> None:
        self._read = read
        self._changed = threading.Condition()
        self._started = 0  # reads begun
        self._done = 0  # the latest read finished (its number)
        self._result: int | BaseException = 0
        self._reading = False

    def get(self) -> int:
        with self._changed:
            wanted = self._started + 1  # the first read to begin after this call
            while self._done < wanted and self._reading:
                self._changed.wait()
            if self._done < wanted:
                self._started += 1
                number, self._reading = self._started, True
            else:
                number = 0
        if number:
            try:
                result: int | BaseException = self._read()
            except Exception as exc:
                result = exc
            with self._changed:
                self._done, self._result, self._reading = number, result, False
                self._changed.notify_all()
        result = self._result if not number else result
        if isinstance(result, BaseException):
            raise result
        return result


class SequenceCounter:
    """PostgreSQL: the sequence, read on a connection of this process's own."""

    # Before its first nextval a sequence reads its start value, as after it: count 0.
    READ = f"SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {SEQUENCE}".encode()  # noqa: S608
    BUMP = f"SELECT nextval('{SEQUENCE}')"

    def __init__(self) -> None:
        self._connection: Any = None
        self._pid: int | None = None
        self._reads: SharedReads | None = None
        self._lock = threading.Lock()

    def _read_now(self) -> int:
        from psycopg import OperationalError, pq

        if self._connection is None or self._connection.closed:
            self._connection = dedicated_connection("ems-generation", timeout=5.0)
        # libpq's own call: a third of the cost of a cursor, on every served config.
        result = self._connection.pgconn.exec_(self.READ)
        if result.status != pq.ExecStatus.TUPLES_OK:
            message = (result.error_message or b"no answer").decode(errors="replace")
            self._connection.close()
            raise OperationalError(f"Reading the config generation failed: {message}")
        return int(result.get_value(0, 0))

    def read(self) -> int:
        if self._reads is None or self._pid != os.getpid():
            with self._lock:
                if self._reads is None or self._pid != os.getpid():
                    # After a fork: the parent's connection is not this process's to use.
                    self._connection, self._pid = None, os.getpid()
                    self._reads = SharedReads(self._read_now)
        return self._reads.get()

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
