"""The served configs of `GET /config/{id}`, cached in each process on SQLite.

A counter in a small file beside the database (`config.db.generation`, mapped into
memory) changes with every committed config write, whichever process made it; a cached
config is used only while the counter still reads what it read before the config was
loaded. Checking costs a memory read, no system call, where loading costs a query and
JSON decoding on the fleet's hottest path. On PostgreSQL (possibly several servers on
several hosts) nothing is cached.

Anything that changes configs must go through devices.services (every write there bumps
the counter); a change made by hand in the database is seen after a restart.
"""

from __future__ import annotations

import mmap
import os
import struct
import threading
from collections.abc import Callable

from django.db import connection

_COUNTER = struct.Struct("<Q")


class ConfigGeneration:
    """The shared counter; one mapping per process (remapped after a fork)."""

    def __init__(self) -> None:
        self._map: mmap.mmap | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()

    @staticmethod
    def available() -> bool:
        name = str(connection.settings_dict.get("NAME", ""))
        # An in-memory database (the tests') has no file to put a counter beside.
        return connection.vendor == "sqlite" and bool(name) and "memory" not in name

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


generation = ConfigGeneration()


class ServedConfigCache:
    """device id -> (generation when loaded, loaded value), for one process."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[int, object]] = {}

    def clear(self) -> None:
        self._entries.clear()

    def current(self, device_id: str) -> object | None:
        """The cached value while it is still current, else None (nothing is loaded).
        Entries exist only where the counter is available (see `get`)."""
        entry = self._entries.get(device_id)
        if entry is None or entry[0] != generation.read():
            return None
        return entry[1]

    def get(self, device_id: str, load: Callable[[], object | None]) -> object | None:
        if not generation.available():
            return load()
        cached = self.current(device_id)
        if cached is not None:
            return cached
        # Read the counter before loading: a write that commits meanwhile bumps it past
        # `current`, and the next call loads again.
        current = generation.read()
        value = load()
        if value is None:
            self._entries.pop(device_id, None)
        else:
            self._entries[device_id] = (current, value)
        return value


served_configs = ServedConfigCache()


def config_changed() -> None:
    """Call on commit of every write that may change a served config."""
    if generation.available():
        generation.bump()
