"""Where devices call from: the one gate every device call passes to be recorded
(`GET /config/{id}`, and `PUT` by the device itself), stored off the request path.

That GET is the fleet's hottest call. Storing the caller's address inside the request
made reads wait for the database's write lock, worst when the once-a-minute refresh of
many devices fell due together (throughput collapsed to a third for seconds at a time).
Each process collects the addresses in memory instead, and a background thread stores
them every CONTACT_FLUSH_INTERVAL seconds in one short transaction. With the interval
set to 0 they are stored in the request. An unchanged address is stored at most once a
RECORD_INTERVAL, so most calls cost no write at all.
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
from edgeserver.api.addresses import ObservedAddress
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

    def add(self, device_id: str, ip: str, when: datetime, *, now: bool = False) -> None:
        """Remember a contact; stored by the next flush, or at once with `now` (inside the
        caller's transaction, if it has one) or when CONTACT_FLUSH_INTERVAL is 0."""
        recorded = self._recorded.get(device_id)
        if recorded is not None and recorded[0] == ip and when - recorded[1] < RECORD_INTERVAL:
            return
        self._recorded[device_id] = (ip, when)
        if now or settings.CONTACT_FLUSH_INTERVAL <= 0:
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


def device_contact_record(
    *,
    device_id: str,
    observed: ObservedAddress | None,
    known_ip: str = "",
    last_contact: datetime | None = None,
    in_write: bool = False,
) -> None:
    """A device called the server from `observed`: remember it.

    `known_ip`/`last_contact` are what the caller already loaded of the stored
    observation; with the buffer's own memory of what this process stored, an unchanged
    address seen within RECORD_INTERVAL costs nothing. A write of the device's own config
    (`in_write`) stores the contact in its transaction, since it writes anyway.
    """
    if observed is None:
        return
    now = timezone.now()
    if (
        known_ip == observed.ip
        and last_contact is not None
        and now - last_contact < RECORD_INTERVAL
    ):
        return
    contacts.add(device_id, observed.ip, now, now=in_write)
