"""Write transactions that queue instead of colliding on SQLite.

SQLite lets one writer at a time hold the database. A second writer that finds it busy
is put to sleep by SQLite's busy handler in growing steps (1, 2, 5, ... 100 ms) and
retries; with a dozen gunicorn threads writing at once most of the time goes to those
sleeps (a p99 above a second at 16 concurrent writers). Here writers first take a lock
that the kernel hands over in order: a thread lock within the process, then an flock on
a file beside the database across processes (gunicorn workers and the monitor). On
PostgreSQL, row locks already queue writers; nothing extra is done.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from django.db import IntegrityError, connection, connections, transaction
from django.db.models import Field, Model

T = TypeVar("T")

# Re-entrant so that a nested call fails in atomic(durable=True) instead of deadlocking.
_thread_lock = threading.RLock()
_lock_fd: int | None = None
_lock_fd_pid: int | None = None


def _lock_file() -> int:
    """This process's descriptor of the lock file (reopened after a fork)."""
    global _lock_fd, _lock_fd_pid
    if _lock_fd is None or _lock_fd_pid != os.getpid():
        path = f"{connection.settings_dict['NAME']}.write-lock"
        _lock_fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        _lock_fd_pid = os.getpid()
    return _lock_fd


def _queues_writers() -> bool:
    name = str(connection.settings_dict.get("NAME", ""))
    # An in-memory database (the tests') has no file to put a lock beside.
    return connection.vendor == "sqlite" and bool(name) and "memory" not in name


@contextmanager
def write_transaction(*, durable: bool = True) -> Iterator[None]:
    """A transaction (durable unless told otherwise) whose writers queue in order on SQLite.

    Inside an enclosing transaction (e.g. an admin view's), which on SQLite already holds
    the write lock, the queue is not entered: a queued writer of another process may be
    waiting for that very lock, and waiting for it in turn would deadlock both.
    """
    if not _queues_writers() or connection.in_atomic_block:
        with transaction.atomic(durable=durable):
            yield
        return
    with _thread_lock:
        fd = _lock_file()
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            with transaction.atomic(durable=durable):
                yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)


def write_retrying_create_race(write: Callable[[], T], *, attempts: int = 3) -> T:
    """`write()` in a write_transaction, tried again when it loses a race to create a row
    (IntegrityError): on PostgreSQL a row that does not exist yet locks nothing, so two
    writers may both set out to create it; the next attempt finds it and locks it."""
    for attempt in range(attempts):
        try:
            with write_transaction():
                return write()
        except IntegrityError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def dedicated_connection(purpose: str, *, timeout: float, **options: Any) -> Any:
    """A PostgreSQL connection of its own (autocommit), outside Django's per-thread ones,
    with Django's parameters: for a session that must outlive requests (a lock) or serve
    every thread of the process (generation reads). `purpose` names it in
    pg_stat_activity. TCP keepalives notice a peer that went away within `timeout`."""
    import psycopg

    params = dict(connections["default"].get_connection_params())
    for name in ("cursor_factory", "context", "prepare_threshold", "server_side_binding"):
        params.pop(name, None)
    return psycopg.connect(
        **params,
        autocommit=True,
        application_name=purpose[:63],
        connect_timeout=max(1, int(timeout)),
        keepalives=1,
        keepalives_idle=max(1, int(timeout) // 3),
        keepalives_interval=1,
        keepalives_count=3,
        tcp_user_timeout=int(timeout * 1000),
        **options,
    )


@contextmanager
def one_server_at_a_time(name: str) -> Iterator[None]:
    """Run the block in one server at a time, for work several replicas starting together
    would otherwise each do (migrating, issuing the bootstrap token): a PostgreSQL session
    advisory lock, or an flock on a file beside the SQLite database (not the write queue's:
    the block itself writes through it)."""
    if connection.vendor == "postgresql":
        key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [key])
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
    elif _queues_writers():
        with open(f"{connection.settings_dict['NAME']}.start-lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield
    else:
        yield


def update_rows(model: type[Model], fields: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
    """Set `fields` of many rows, each to its own values, in one statement: `rows` are
    (primary key, value of each field) tuples. `UPDATE ... FROM (VALUES ...)` on SQLite
    (3.33 and later) and PostgreSQL alike; Django's bulk_update builds a CASE per row and
    field, which the database evaluates for every row (quadratic in the batch).
    Returns the number of rows updated."""
    if not rows:
        return 0
    meta = model._meta
    quote = connection.ops.quote_name
    table = quote(meta.db_table)
    model_fields = [meta.get_field(name) for name in fields]
    columns = ["k", *(f"v{index}" for index in range(len(fields)))]
    postgres = connection.vendor == "postgresql"

    def value(index: int, field: Field) -> str:
        # PostgreSQL types a VALUES column from its parameters (unknown, text): cast to the
        # column's type. SQLite stores what it is given.
        ref = f"v.v{index}"
        return f"CAST({ref} AS {field.db_type(connection)})" if postgres else ref

    assignments = ", ".join(
        f"{quote(field.column)} = {value(index, field)}" for index, field in enumerate(model_fields)
    )
    row_sql = "(" + ", ".join(["%s"] * len(columns)) + ")"
    # Identifiers come from the model's metadata; every value is a bound parameter.
    sql = (
        f"WITH v({', '.join(columns)}) AS (VALUES {', '.join([row_sql] * len(rows))}) "  # noqa: S608
        f"UPDATE {table} SET {assignments} FROM v WHERE {table}.{quote(meta.pk.column)} = v.k"
    )
    params: list[Any] = []
    for key, *values in rows:
        params.append(key)
        params += [
            field.get_db_prep_save(item, connection)
            for field, item in zip(model_fields, values, strict=True)
        ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount
