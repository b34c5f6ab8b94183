"""What the processes of one running server share, in its runtime directory (RUNTIME_DIR,
or a temporary one the gunicorn master makes): whether this replica leads, which the
device monitor writes and the web workers read, and whether the server is draining, which
`python -m edgeserver.drain` (the manifests' preStop) marks and readiness reads.

Small files, so that no process needs another to answer: a monitor that died stops
counting as leader when its last word expires; a server restarted in the same pod starts
undrained (the master clears the directory).
"""

from __future__ import annotations

import functools
import json
import os
import time
from pathlib import Path

LEADER_FILE = "leader.json"
DRAINING_FILE = "draining"
# How long a worker trusts what it last read of the draining mark.
_DRAINING_RECHECK = 0.25


def runtime_dir() -> Path | None:
    directory = os.environ.get("RUNTIME_DIR", "").strip()
    return Path(directory) if directory else None


def prepare(directory: Path) -> None:
    """In the master, before anything else starts: the directory exists and says nothing
    of a previous run (a container restarted in its pod keeps /tmp)."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    for name in (LEADER_FILE, DRAINING_FILE):
        (directory / name).unlink(missing_ok=True)


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    temporary.replace(path)


class LeaderState:
    """Whether this replica leads, valid until a deadline."""

    def __init__(self, directory: Path | None) -> None:
        self.path = directory / LEADER_FILE if directory else None

    @classmethod
    def of_this_server(cls) -> LeaderState:
        return cls(runtime_dir())

    def write(self, leading: bool, *, valid_for: float) -> None:
        if self.path is not None:
            state = {"leader": leading, "until": time.time() + valid_for}
            _write_atomically(self.path, json.dumps(state))

    def read(self) -> bool:
        if self.path is None:
            return False
        try:
            state = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return False
        return bool(state.get("leader")) and time.time() < float(state.get("until", 0))


class Draining:
    """The server's draining mark: set before it stops, so that load balancers take it out
    (readiness fails) and clients move (each answer closes its connection)."""

    def __init__(self, directory: Path | None) -> None:
        self.path = directory / DRAINING_FILE if directory else None
        self._known = False
        self._checked = float("-inf")

    @classmethod
    def of_this_server(cls) -> Draining:
        return cls(runtime_dir())

    def mark(self) -> None:
        if self.path is None:
            raise RuntimeError("RUNTIME_DIR is not set: no running server to drain")
        _write_atomically(self.path, str(time.time()))

    def is_set(self) -> bool:
        """Asked on every request: the file is looked at every quarter of a second."""
        if self.path is None:
            return False
        now = time.monotonic()
        if now - self._checked >= _DRAINING_RECHECK:
            self._known = self.path.exists()
            self._checked = now
        return self._known


@functools.cache
def draining() -> Draining:
    """This process's view of the mark, made on first use (the master sets RUNTIME_DIR
    before it forks); `draining.cache_clear()` after changing it."""
    return Draining.of_this_server()
