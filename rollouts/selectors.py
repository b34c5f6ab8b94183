"""Rollout reads: lists, one rollout with its waves and devices, and the counts the driver
decides from and `/metrics` reports."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from django.db.models import Count, QuerySet

from rollouts.choices import ACTIVE, GOT_VERSION, DeviceState, RolloutStatus
from rollouts.exceptions import RolloutNotFound
from rollouts.models import Rollout, RolloutDevice, RolloutWave


def rollout_list(*, status: str | None = None, profile: str | None = None) -> QuerySet[Rollout]:
    rows = Rollout.objects.all()
    if status:
        rows = rows.filter(status=status)
    if profile:
        rows = rows.filter(profile_name=profile)
    return rows.order_by("-created_at", "-id")


def rollout_get(*, rollout_id: int) -> Rollout:
    rollout = Rollout.objects.filter(pk=rollout_id).first()
    if rollout is None:
        raise RolloutNotFound(rollout_id)
    return rollout


def active_rollouts() -> list[Rollout]:
    return list(Rollout.objects.filter(status__in=ACTIVE).order_by("id"))


def unsettled_rollouts() -> list[Rollout]:
    """Ended rollouts whose profile still stages their version (a crash in between)."""
    return list(Rollout.objects.filter(staging_open=True).exclude(status__in=ACTIVE))


@dataclass
class WaveProgress:
    """One wave's devices by state, the offline ones apart."""

    wave: RolloutWave
    states: Counter[str] = field(default_factory=Counter)
    offline: int = 0

    @property
    def devices(self) -> int:
        return sum(self.states.values())

    @property
    def resolved(self) -> bool:
        """Every device confirmed, failed, or offline (which does not hold a wave up)."""
        return self.states[DeviceState.APPLIED] <= self.offline


@dataclass
class Progress:
    waves: list[WaveProgress]

    def counts(self, *states: str) -> int:
        return sum(w.states[s] for w in self.waves for s in states)

    @property
    def attempted(self) -> int:
        """Devices that got the new version while they answered (offline ones not counted)."""
        return self.counts(*GOT_VERSION) - sum(w.offline for w in self.waves)

    @property
    def failed(self) -> int:
        return self.counts(DeviceState.FAILED)


def rollout_progress(rollout: Rollout) -> Progress:
    """Each wave of `rollout` with its devices by state: one grouped query."""
    waves = {w.index: WaveProgress(w) for w in RolloutWave.objects.filter(rollout=rollout)}
    rows = (
        RolloutDevice.objects.filter(rollout=rollout)
        .values_list("wave", "state", "offline")
        .annotate(n=Count("id"))
        .order_by()
    )
    for wave, state, offline, n in rows:
        waves[wave].states[state] += n
        if offline and state == DeviceState.APPLIED:
            waves[wave].offline += n
    return Progress([waves[i] for i in sorted(waves)])


def status_counts() -> dict[str, int]:
    """Rollouts by status, every status present."""
    found = dict(Rollout.objects.values_list("status").annotate(n=Count("id")).order_by())
    return {status: found.get(status, 0) for status in RolloutStatus.values}


def active_device_counts() -> list[tuple[Rollout, dict[str, int]]]:
    """The devices of each active rollout by state, every state present."""
    rollouts = {r.pk: r for r in active_rollouts()}
    counts: dict[int, Counter[str]] = {pk: Counter() for pk in rollouts}
    rows = (
        RolloutDevice.objects.filter(rollout_id__in=rollouts)
        .values_list("rollout_id", "state")
        .annotate(n=Count("id"))
        .order_by()
    )
    for rollout_id, state, n in rows:
        counts[rollout_id][state] = n
    return [
        (rollouts[pk], {state: counts[pk][state] for state in DeviceState.values})
        for pk in sorted(rollouts)
    ]
