"""The served configs' generation on PostgreSQL (devices/generation.py): read afresh on the
calling thread's connection, bumped by every config write, and a broken connection never
leaves a thread unable to serve."""

from __future__ import annotations

import time

import pytest
from django.db import connection

from devices.generation import SequenceCounter, generation
from devices.served import served_config
from devices.services import device_upsert
from users.actors import Actor

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the sequence is PostgreSQL's"),
    pytest.mark.django_db(transaction=True),
]


def test_every_config_write_moves_the_generation():
    before = generation.read()
    device_upsert(device_id="g-1", data={"device_type": "jetson"}, actor=Actor(name="t"))
    assert generation.read() > before
    after = generation.read()
    device_upsert(
        device_id="g-1", data={"device_type": "jetson", "port": 9200}, actor=Actor(name="t")
    )
    assert generation.read() > after


def test_a_broken_connection_costs_one_read_then_the_thread_reconnects():
    """The read a request makes itself (when the poll is not recent enough)."""
    counter = SequenceCounter()
    counter._read_here()
    pid = connection.connection.info.backend_pid
    from django.db import connections

    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    finally:
        other.close()
    with pytest.raises(Exception):
        counter.read()
    assert counter.read() >= 0
    assert connection.connection.info.backend_pid != pid


def test_the_cached_config_is_never_served_after_a_write():
    device_upsert(
        device_id="g-2", data={"device_type": "jetson", "port": 9101}, actor=Actor(name="t")
    )
    assert served_config(device_id="g-2").document["port"] == 9101
    assert served_config(device_id="g-2").document["port"] == 9101  # from the cache now
    device_upsert(
        device_id="g-2", data={"device_type": "jetson", "port": 9202}, actor=Actor(name="t")
    )
    assert served_config(device_id="g-2").document["port"] == 9202


def test_a_request_trusts_only_a_poll_begun_after_any_write_it_could_have_seen_answered():
    counter = SequenceCounter()
    assert counter.read() == counter._read_here()  # starts the poller
    deadline = time.monotonic() + 5
    while counter._latest is None:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    began, _ = counter._latest
    assert time.monotonic() - began < 1
    # A poll older than ANSWER_DELAY is not trusted: the request reads for itself.
    counter._latest = (time.monotonic() - 10 * SequenceCounter.ANSWER_DELAY, -1)
    counter._idle.clear()
    assert counter.read() != -1
    # A write is answered ANSWER_DELAY after its bump, by when the poll has seen it.
    before = counter.read()
    started = time.monotonic()
    device_upsert(device_id="g-3", data={"device_type": "jetson"}, actor=Actor(name="t"))
    assert time.monotonic() - started >= SequenceCounter.ANSWER_DELAY
    assert counter.read() > before
