"""Where devices call `GET /config/{id}` from, stored off the request path.

That GET is the fleet's hottest call. Storing the caller's address inside the request
made reads wait for the database's write lock, worst when the once-a-minute refresh of
many devices fell due together (throughput collapsed to a third for seconds at a time).
Each process collects the addresses in memory instead, and a background thread stores
them every CONTACT_FLUSH_INTERVAL seconds in one short transaction. With the interval
set to 0 they are stored in the request.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from devices.models import DeviceHealth
from edgeserver.db import write_transaction

logger = logging.getLogger(__name__)

# Ids per UPDATE statement (SQLite limits the number of bound parameters).
_BATCH = 500
# An unchanged address is stored again only after this long (last_contact's resolution).
RECORD_INTERVAL = timedelta(seconds=60)


def store_contacts(contacts: dict[str, tuple[str, datetime]]) -> None:
    """Store `{device_id: (ip, when)}`: one UPDATE per address, in one transaction."""
    by_ip: dict[str, list[str]] = defaultdict(list)
    latest: dict[str, datetime] = {}
    for device_id, (ip, when) in contacts.items():
        by_ip[ip].append(device_id)
        latest[ip] = max(when, latest.get(ip, when))
    with write_transaction(durable=False):
        for ip, device_ids in by_ip.items():
            for start in range(0, len(device_ids), _BATCH):
                DeviceHealth.objects.filter(pk__in=device_ids[start : start + _BATCH]).update(
                    observed_ip=ip, last_contact=latest[ip]
                )


class ContactBuffer:
    """Addresses seen by this process and not stored yet (the newest per device wins), and
    what this process stored lately, so a device calling again and again from the same
    address is stored once a minute."""

    def __init__(self) -> None:
        self._pending: dict[str, tuple[str, datetime]] = {}
        self._recorded: dict[str, tuple[str, datetime]] = {}
        self._lock = threading.Lock()
        self._flusher_pid: int | None = None

    def add(self, device_id: str, ip: str, when: datetime | None = None) -> None:
        when = when or timezone.now()
        recorded = self._recorded.get(device_id)
        if recorded is not None and recorded[0] == ip and when - recorded[1] < RECORD_INTERVAL:
            return
        self._recorded[device_id] = (ip, when)
        if settings.CONTACT_FLUSH_INTERVAL <= 0:
            store_contacts({device_id: (ip, when)})
            return
        with self._lock:
            self._pending[device_id] = (ip, when)
            if self._flusher_pid != os.getpid():  # first use in this (forked) process
                self._flusher_pid = os.getpid()
                threading.Thread(target=self._run, name="contact-flusher", daemon=True).start()

    def clear(self) -> None:
        """Forget everything not stored yet and what was stored (a fresh process)."""
        with self._lock:
            self._pending.clear()
            self._recorded.clear()

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        if pending:
            store_contacts(pending)

    def _run(self) -> None:
        stop = threading.Event()
        atexit.register(self._flush_quietly)
        while not stop.wait(settings.CONTACT_FLUSH_INTERVAL):
            self._flush_quietly()
            close_old_connections()

    def _flush_quietly(self) -> None:
        try:
            self.flush()
        except Exception:
            # A database that is briefly away costs a few addresses, never a request.
            logger.exception("Storing device contact addresses failed")


contacts = ContactBuffer()
