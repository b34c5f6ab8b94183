"""The state machine the leader runs: a monitor listener (devices.monitor) whose `tick`
advances every running rollout a step. Everything it decides from is in the database, so
a restart or another leader goes on where the rollout was; it asks `still_leading`
before every write.

A step of one rollout: mend a staging a crash cut short, notice offline devices that
answer again, confirm the devices waiting for it (`/health` healthy and the running
config matching what is served for the keys the rollout sets), then roll back when too
many failed, complete the wave whose devices are all settled, start the next one once
the previous completed `wave_wait_seconds` ago, or promote when none is left.

Confirmations run in the monitor's thread through `devices.client.run_each`: every call
is bounded by PROBE_TIMEOUT and all of a rollout's run at once, so a step holds the
monitor for at most two timeouts (health, then config), and a rollout is looked at every
CONFIRM_INTERVAL at most, which leaves the probe rounds their time.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from devices import client
from devices.choices import DeviceStatus
from devices.layers import found, leaves, lookup
from devices.models import Device
from rollouts import selectors, services
from rollouts.choices import DeviceState, RolloutStatus
from rollouts.exceptions import TransitionRefused
from rollouts.models import Rollout, RolloutDevice
from rollouts.services import Check

logger = logging.getLogger(__name__)

# Seconds between two confirmation looks at one rollout's waiting devices.
CONFIRM_INTERVAL = 1.0


def _same(a: Any, b: Any) -> bool:
    """JSON equality of two looked-up values, either of which may be missing."""
    if not found(a) or not found(b):
        return found(a) == found(b)
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def config_mismatch(config: dict[str, Any], served: dict[str, Any], running: Any) -> list[str]:
    """The key paths `config` sets where the running config differs from the served one."""
    if not isinstance(running, dict):
        return ["(the running config is not an object)"]
    paths = [path for path, _ in leaves(config)]
    return [".".join(p) for p in paths if not _same(lookup(served, p), lookup(running, p))]


async def _confirm(session: client.Session, item: tuple[Device, dict[str, Any]]) -> Check:
    device, config = item
    ip, port, timeout = device.ip_address, device.reload_port, settings.PROBE_TIMEOUT
    if not ip:
        return Check(device.device_id, "no IP address")
    try:
        health = await client.fetch_health(session, ip, port, timeout=timeout)
        if health.status != 200:
            return Check(device.device_id, f"/health answered HTTP {health.status}")
        running = await client.fetch_config(session, ip, port, timeout=timeout)
    except client.DeviceCallError as exc:
        return Check(device.device_id, f"unreachable: {exc}")
    differing = config_mismatch(config, device.config_document(), running)
    if differing:
        return Check(device.device_id, "running config differs at " + ", ".join(differing[:5]))
    return Check(device.device_id, None)


class RolloutDriver:
    """Advances every running rollout, on the leader's monitor (its `tick`)."""

    def __init__(self, *, confirm_interval: float = CONFIRM_INTERVAL) -> None:
        # The monitor sets this to its leadership check (devices.monitor.MonitorListener).
        self.still_leading: Callable[[], bool] | None = None
        self.confirm_interval = confirm_interval
        # When each rollout's devices were last looked at: only a pace, never a decision.
        self._looked: dict[int, float] = {}

    def leading(self) -> bool:
        return self.still_leading is None or self.still_leading()

    def devices_changed(self, device_ids: list[str]) -> None:
        """Nothing: a rollout reads the stored observations at its own pace."""

    def tick(self, now: datetime | None = None) -> None:
        for rollout in selectors.unsettled_rollouts():
            if not self.leading():
                return
            services.rollout_settle(rollout=rollout, actor=services.driver_actor(rollout))
        for rollout in selectors.active_rollouts():
            try:
                self.advance(rollout)
            except TransitionRefused:
                pass  # an operator ended it meanwhile
            except Exception:
                logger.exception("Rollout %d: step failed; trying again", rollout.pk)

    def advance(self, rollout: Rollout) -> None:
        """One step of `rollout` (see the module's docstring)."""
        if not self.leading():
            return
        services.staging_mend(rollout=rollout)
        self._notice_returns(rollout)
        self._look(rollout)
        progress = selectors.rollout_progress(rollout)
        strategy = rollout.strategy
        canary_done = progress.waves[0].wave.completed_at is not None
        if canary_done and self._over_threshold(progress, strategy["max_failure_percent"]):
            if self.leading():
                reason = (
                    f"{progress.failed} of {progress.attempted} devices failed, over "
                    f"max_failure_percent {strategy['max_failure_percent']}"
                )
                services.rollout_end(
                    rollout_id=rollout.pk,
                    status=RolloutStatus.ROLLED_BACK,
                    reason=reason,
                    actor=services.driver_actor(rollout),
                )
            return
        current = next((w for w in progress.waves if w.wave.completed_at is None), None)
        if current is None:
            # Promoting reaches every matching device: a paused rollout waits for resume.
            if rollout.status == RolloutStatus.RUNNING and self.leading():
                services.rollout_end(
                    rollout_id=rollout.pk,
                    status=RolloutStatus.SUCCEEDED,
                    reason=f"every wave confirmed ({progress.failed} failed)",
                    actor=services.driver_actor(rollout),
                )
            return
        if current.wave.started_at is not None:
            if current.resolved and self.leading():
                services.wave_complete(rollout_id=rollout.pk, index=current.wave.index)
            return
        if self._may_start(rollout, progress, current) and self.leading():
            services.wave_begin(rollout_id=rollout.pk, index=current.wave.index)

    @staticmethod
    def _over_threshold(progress: selectors.Progress, max_percent: float) -> bool:
        attempted = progress.attempted
        return attempted > 0 and progress.failed * 100 > max_percent * attempted

    @staticmethod
    def _may_start(
        rollout: Rollout, progress: selectors.Progress, current: selectors.WaveProgress
    ) -> bool:
        """A wave starts while running, once the previous one completed wave_wait_seconds
        ago (a wave without devices waits for nothing)."""
        if rollout.status != RolloutStatus.RUNNING:
            return False
        index = current.wave.index
        if index == 0 or current.devices == 0:
            return True
        previous = progress.waves[index - 1].wave.completed_at
        wait = timedelta(seconds=rollout.strategy["wave_wait_seconds"])
        return previous is not None and timezone.now() >= previous + wait

    def _notice_returns(self, rollout: Rollout) -> None:
        """Offline devices the monitor found healthy again (it delivered their reload)."""
        back = list(
            rollout.devices.filter(
                state=DeviceState.APPLIED,
                offline=True,
                device_id__in=Device.objects.filter(health__status=DeviceStatus.HEALTHY)
                .exclude(ip_address="")
                .values("device_id"),
            ).values_list("device_id", flat=True)
        )
        if back and self.leading():
            services.devices_back(rollout_id=rollout.pk, device_ids=back)

    def _look(self, rollout: Rollout) -> None:
        """Confirm the devices waiting for it, at most every `confirm_interval`."""
        last = self._looked.get(rollout.pk)
        if last is not None and time.monotonic() - last < self.confirm_interval:
            return
        self._looked[rollout.pk] = time.monotonic()
        waiting = RolloutDevice.objects.filter(
            rollout=rollout, state=DeviceState.APPLIED, offline=False
        ).values_list("device_id", flat=True)
        ids = list(waiting)
        if not ids:
            return
        devices = list(Device.objects.filter(device_id__in=ids))
        checks = client.run_each(_confirm, [(d, rollout.config) for d in devices])
        gone = set(ids) - {d.device_id for d in devices}
        checks += [Check(device_id, services.DELETED_ERROR) for device_id in sorted(gone)]
        if self.leading():
            services.devices_checked(
                rollout_id=rollout.pk,
                checks=checks,
                timeout_seconds=rollout.strategy["confirm_timeout_seconds"],
                now=timezone.now(),
            )
