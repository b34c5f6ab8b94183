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
import time

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


def _read_sequence(pgconn) -> int:
    """The sequence's value, with libpq's own call (a third of the cost of a cursor)."""
    from psycopg import OperationalError, pq

    result = pgconn.exec_(SequenceCounter.READ)
    if result.status != pq.ExecStatus.TUPLES_OK:
        message = (result.error_message or b"no answer").decode(errors="replace")
        raise OperationalError(f"Reading the config generation failed: {message}")
    return int(result.get_value(0, 0))


class SequenceCounter:
    """PostgreSQL: the sequence, known without a round trip per served config.

    A write is answered ANSWER_DELAY after its bump (`bump` waits). Each process keeps a
    thread that reads the sequence every POLL_INTERVAL while configs are being served. A
    request that arrives at time t may trust the latest poll if that poll began after
    t - ANSWER_DELAY: any write answered before t was bumped before t - ANSWER_DELAY, so
    before the poll began, and the poll saw it. Otherwise (the poller is behind, or was
    idle) the request reads the sequence itself, on its thread's connection. Only
    durations on each host's own clock are compared; no clock is shared between hosts.

    Measured alternatives: a read per served config (one round trip each: PostgreSQL
    fetches at 1.3 x the baseline's CPU against SQLite's 1.7 x), the reads of concurrent
    requests coalesced (waiting for a read begun after one's arrival cost six times the
    round trip in locking), LISTEN/NOTIFY (the notification may arrive after the write's
    answer: it cannot give the invariant)."""

    # Before its first nextval a sequence reads its start value, as after it: count 0.
    READ = f"SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {SEQUENCE}".encode()  # noqa: S608
    BUMP = f"SELECT nextval('{SEQUENCE}')"
    POLL_INTERVAL = 0.005
    ANSWER_DELAY = 0.025
    # The poller sleeps once no config was served for this long (an idle server).
    IDLE_AFTER = 2.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._latest: tuple[float, int] | None = None  # (when the poll began, its value)
        self._last_request = 0.0
        self._idle = threading.Event()
        self._wake = threading.Event()

    def read(self) -> int:
        arrived = time.monotonic()
        self._last_request = arrived
        if self._pid != os.getpid():
            self._start_poller()
        elif self._idle.is_set():
            self._wake.set()
        latest = self._latest
        if latest is not None and latest[0] >= arrived - self.ANSWER_DELAY:
            return latest[1]
        return self._read_here()

    def _read_here(self) -> int:
        try:
            connection.ensure_connection()
            # The connection is in autocommit (served configs are not cached inside a
            # transaction), so a bare statement leaves it as psycopg knows it: idle.
            return _read_sequence(connection.connection.pgconn)
        except Exception:
            # A connection that failed (the server restarted) is dropped, so the next
            # call connects afresh: the fast path has no request end that would drop it.
            connection.close()
            raise

    def _start_poller(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            # In a forked worker: the parent's poller thread and connection are not here.
            self._pid, self._latest = os.getpid(), None
            threading.Thread(target=self._poll, name="config-generation", daemon=True).start()

    def _poll(self) -> None:
        pid, poll_connection = os.getpid(), None
        while os.getpid() == pid:
            if time.monotonic() - self._last_request > self.IDLE_AFTER:
                self._idle.set()
                self._wake.wait()
                self._wake.clear()
                self._idle.clear()
            began = time.monotonic()
            try:
                if poll_connection is None or poll_connection.closed:
                    poll_connection = dedicated_connection("ems-generation", timeout=5.0)
                self._latest = (began, _read_sequence(poll_connection.pgconn))
            except Exception as exc:
                logger.warning("Polling the config generation failed (%s); retrying", exc)
                if poll_connection is not None:
                    poll_connection.close()
                poll_connection = None
                time.sleep(1.0)
            time.sleep(max(0.0, self.POLL_INTERVAL - (time.monotonic() - began)))

    def bump(self) -> None:
        """After a config write commits, on the writer's connection, before it answers:
        the answer waits ANSWER_DELAY, by which time every process's poll has seen it."""
        with connection.cursor() as cursor:
            cursor.execute(self.BUMP)
        time.sleep(self.ANSWER_DELAY)


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
