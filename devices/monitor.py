"""The device monitor: one loop that keeps every device's stored observation fresh.

Every MONITOR_INTERVAL it probes each device that has an address (`devices_probe`, which
also compares running configs every DRIFT_CHECK_INTERVAL). Between rounds it looks, every
DUE_POLL_INTERVAL, for devices a config write asked about (created, or a new address,
ports or type) and probes those at once. Listeners hear which devices changed.

Run it with `python manage.py monitor_devices`; gunicorn's master runs exactly one beside
its workers (edgeserver/gunicorn_hooks.py). With several replicas every one runs a monitor,
and only the leader's acts (edgeserver/leadership.py): the others wait, asking before every
iteration, and the one that becomes leader starts with a full round.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Protocol

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone
from django.utils.module_loading import import_string

from devices import runtime, selectors
from devices.models import Device

logger = logging.getLogger(__name__)

# How often the loop looks for probe requests between rounds: an indexed query on a
# column that is NULL for every device nobody just changed.
DUE_POLL_INTERVAL = 0.5


class MonitorListener(Protocol):
    """Something that acts on what the monitor sees (e.g. the Kubernetes auto-sync).

    Both methods run in the monitor's thread; an exception is logged and the loop goes on.
    Keep them quick, or hand the work to a thread of your own.
    """

    def devices_changed(self, device_ids: list[str]) -> None:
        """Devices whose status, ip_address, port, reload_port, device_type or labels
        changed, or that were created or deleted, since the monitor last reported them.
        The first round after start reports every device."""

    def tick(self, now: datetime) -> None:
        """Called once per loop iteration (about every DUE_POLL_INTERVAL), for periodic work."""

    # A listener with a `still_leading` attribute gets the monitor's leadership check in
    # it, to ask before each batch of writes of its own (the auto-sync asks per device).


# What listeners care about: the contract status and what publication is built from
# (a device's Service carries its labels).
PublishedState = tuple[str, str, int, int, str, tuple[tuple[str, str], ...]]


def _published_state(device: Device) -> PublishedState:
    status, _ = selectors.device_status(device)
    labels = tuple(sorted((device.labels or {}).items()))
    return (status, device.ip_address, device.port, device.reload_port, device.device_type, labels)


def _release_stale_connections() -> None:
    """What Django does between requests: drop a connection past CONN_MAX_AGE or broken
    (the database restarted). Never inside a transaction, which the loop does not hold."""
    if not connection.in_atomic_block:
        close_old_connections()


# Dotted paths of listener factories that apps register at start (k8sbridge registers its
# auto-sync); imported only in the process that runs the monitor.
_registered: list[str] = []


def register_listener(path: str) -> None:
    """Have every monitor build the listener `path` names (a zero-argument factory)."""
    if path not in _registered:
        _registered.append(path)


def load_listeners(paths: Iterable[str] | None = None) -> list[MonitorListener]:
    """Build the registered listeners and those named in MONITOR_LISTENERS; `paths`
    instead of both."""
    if paths is None:
        paths = [*_registered, *(p for p in settings.MONITOR_LISTENERS if p not in _registered)]
    return [import_string(path)() for path in paths]


class DeviceMonitor:
    def __init__(
        self,
        *,
        listeners: Sequence[MonitorListener] = (),
        poll_interval: float = DUE_POLL_INTERVAL,
        is_leader: Callable[[], bool] | None = None,
    ) -> None:
        self.listeners = list(listeners)
        self.poll_interval = poll_interval
        self.is_leader = is_leader
        self._acting = is_leader is None
        for listener in self.listeners:
            if hasattr(listener, "still_leading"):
                listener.still_leading = is_leader
        self._known: dict[str, PublishedState] = {}
        self._next_round = 0.0

    def run(
        self, stop: threading.Event, *, keep_running: Callable[[], bool] = lambda: True
    ) -> None:
        """Loop until `stop` is set (SIGTERM) or `keep_running()` says no; a round in
        progress finishes first (it is bounded by the probe timeouts)."""
        logger.info(
            "Device monitor running: a round every %gs, %gs probe timeout, at most %d in "
            "flight, drift checks every %gs",
            settings.MONITOR_INTERVAL,
            settings.PROBE_TIMEOUT,
            settings.PROBE_CONCURRENCY,
            settings.DRIFT_CHECK_INTERVAL,
        )
        failures = 0
        while not stop.is_set() and keep_running():
            try:
                self.step()
                failures = 0
            except Exception:
                # A database restart or a bug in one round must not end monitoring; waiting
                # longer after each failure keeps an outage from flooding the log.
                failures += 1
                logger.exception("Device monitor iteration failed; trying again")
                _release_stale_connections()
            if failures:
                delay = min(settings.MONITOR_INTERVAL, self.poll_interval * 2**failures)
            else:
                delay = min(self.poll_interval, self._next_round - time.monotonic())
            stop.wait(max(0.0, delay))
        logger.info("Device monitor stopped")

    def _may_act(self) -> bool:
        """Whether this monitor does the duties now. One that has just become the leader
        starts afresh: a full round at once, every device reported to the listeners."""
        if self.is_leader is None:
            return True
        leading = self.is_leader()
        if leading and not self._acting:
            self._next_round = 0.0
            self._known = {}
        self._acting = leading
        return leading

    def step(self) -> list[str]:
        """One iteration: a full round when one is due, else the requested probes; nothing
        while another replica leads. Returns the ids reported to listeners."""
        if not self._may_act():
            return []
        if time.monotonic() >= self._next_round:
            self._next_round = time.monotonic() + settings.MONITOR_INTERVAL
            changed = self.run_round()
        else:
            changed = self.run_requested()
        if changed:
            self._notify(lambda listener: listener.devices_changed(changed))
        now = timezone.now()
        self._notify(lambda listener: listener.tick(now))
        return changed

    def run_round(self) -> list[str]:
        _release_stale_connections()
        devices = list(selectors.device_list())
        result = runtime.devices_probe(
            devices=devices, serve_requests=True, still_leading=self.is_leader
        )
        # A quiet round is not worth a line every MONITOR_INTERVAL; a slow one is a warning.
        level = logging.INFO if result.changed else logging.DEBUG
        if result.seconds > settings.MONITOR_INTERVAL:
            level = logging.WARNING
        logger.log(
            level,
            "Probe round: %d devices in %.2fs, %d changed status",
            len(result.devices),
            result.seconds,
            len(result.changed),
        )
        return self._changes(devices, complete=True)

    def run_requested(self) -> list[str]:
        devices = list(selectors.devices_due_for_probe())
        if not devices:
            return []
        runtime.devices_probe(devices=devices, serve_requests=True, still_leading=self.is_leader)
        return self._changes(devices, complete=False)

    def _changes(self, devices: list[Device], *, complete: bool) -> list[str]:
        """Ids whose published state differs from what listeners last heard. A complete
        list (a round) also reveals deleted devices."""
        states = {device.device_id: _published_state(device) for device in devices}
        changed = [key for key, state in states.items() if self._known.get(key) != state]
        gone = [key for key in self._known if key not in states] if complete else []
        self._known.update(states)
        for device_id in gone:
            del self._known[device_id]
        return sorted(changed + gone)

    def _notify(self, call: Callable[[MonitorListener], None]) -> None:
        for listener in self.listeners:
            try:
                call(listener)
            except Exception:
                logger.exception("Monitor listener %r failed", listener)
