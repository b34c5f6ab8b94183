"""SQLite writers queue on a lock file instead of colliding (edgeserver/db.py)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.e2e


def test_concurrent_writers_through_gunicorn_all_succeed_promptly(server):
    assert server.request("PUT", "/config/w", json={"device_type": "jetson"}).status_code == 200

    def write(i: int) -> tuple[int, float]:
        response = requests.put(
            f"{server.url}/config/w-{i % 8}",
            json={"device_type": "jetson", "n": i},
            headers={"Authorization": f"Bearer {server.token}"},
            timeout=60,
        )
        return response.status_code, response.elapsed.total_seconds()

    with ThreadPoolExecutor(24) as pool:
        results = list(pool.map(write, range(240)))
    assert [code for code, _ in results] == [200] * 240
    # No writer slept its way through SQLite's busy back-off for seconds.
    assert max(seconds for _, seconds in results) < 10
    history = server.request("GET", "/config/w-0/history").json()
    assert history["total"] == 30
    if "DATABASE_URL" not in server.env:  # SQLite: the writers queued on the lock file
        assert Path(server.env["DB_PATH"] + ".write-lock").exists()


@pytest.mark.django_db(transaction=True)
def test_a_write_inside_an_enclosing_transaction_does_not_queue(settings):
    """An admin view's transaction already holds SQLite's lock: the nested write must not
    wait for the queue (a queued writer elsewhere may wait for that lock)."""
    from django.db import transaction

    from devices.services import device_delete, device_upsert
    from users.actors import Actor

    device_upsert(device_id="n", data={"device_type": "jetson"}, actor=Actor(name="t"))
    with transaction.atomic():
        device_delete(device_id="n", actor=Actor(name="t"))
