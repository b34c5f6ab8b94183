"""Rollout writes: start one, pause, resume, abort, and the steps the leader's driver takes
(a wave begins, devices are confirmed or failed, the rollout ends). Each locks the rollout
row and checks its status in the same transaction, so an operator's abort and the driver
never both move one rollout; the profile's staging (devices.profiles) follows the commit.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils import timezone

from devices.choices import DeviceStatus
from devices.exceptions import InvalidProfile, ProfileNotFound, ProfileStaged
from devices.models import Device, Profile, StagedDevice
from devices.profiles import (
    config_problem,
    matched_devices,
    profile_get,
    profile_stage_begin,
    profile_stage_devices,
    profile_stage_end,
)
from edgeserver.db import write_transaction
from rollouts.choices import ACTIVE, GOT_VERSION, DeviceState, RolloutStatus
from rollouts.exceptions import RolloutNotFound, TransitionRefused
from rollouts.models import Rollout, RolloutDevice, RolloutWave
from rollouts.strategy import strategy_of, wave_plan
from users.actors import Actor
from users.choices import ChangeSource

logger = logging.getLogger(__name__)

OFFLINE_ERROR = "offline: confirms when it answers"
DELETED_ERROR = "deleted: no longer registered"


def driver_actor(rollout: Rollout) -> Actor:
    """Who the revisions of the server's own rollout steps name."""
    return Actor(name=f"rollout:{rollout.pk}", source=ChangeSource.API)


def _locked(rollout_id: int) -> Rollout:
    rollout = Rollout.objects.select_for_update().filter(pk=rollout_id).first()
    if rollout is None:
        raise RolloutNotFound(rollout_id)
    return rollout


def active_rollout(profile_name: str) -> Rollout | None:
    return Rollout.objects.filter(profile_name=profile_name, status__in=ACTIVE).first()


def rollout_start(
    *, profile_name: str, config: Mapping[str, Any], strategy: Any, actor: Actor
) -> Rollout:
    """`POST /profiles/{name}/rollouts`: `config` becomes the profile's staged next version
    and the rollout is planned over the devices the profile matches now; the leader's
    driver applies the canary at its next tick. Checks everything before writing."""
    profile = profile_get(name=profile_name)
    checked = strategy_of(strategy)
    problem = config_problem(config)
    if problem:
        raise InvalidProfile(profile_name, problem)
    running = active_rollout(profile_name)
    if running is not None:
        raise ProfileStaged(
            profile_name, f"rollout {running.pk} of this profile is {running.status}: "
            "abort it (or let it end) before starting another",
        )  # fmt: skip
    plan = wave_plan(matched_devices(profile), checked)
    staged = profile_stage_begin(name=profile_name, config=config, actor=actor)
    try:
        return _create(staged, dict(config), checked.as_dict(), plan, actor)
    except Exception:
        profile_stage_end(name=profile_name, actor=actor, promote=False)
        raise


def _create(
    profile: Profile,
    config: dict[str, Any],
    strategy: dict[str, Any],
    plan: list[list[str]],
    actor: Actor,
) -> Rollout:
    now = timezone.now()
    with write_transaction():
        rollout = Rollout.objects.create(
            profile_name=profile.name,
            from_version=profile.version,
            to_version=profile.staged_version or profile.version + 1,
            config=config,
            strategy=strategy,
            actor=actor.name,
            created_at=now,
            updated_at=now,
        )
        percents = [None, *strategy["waves"]]
        RolloutWave.objects.bulk_create(
            RolloutWave(rollout=rollout, index=i, percent=p) for i, p in enumerate(percents)
        )
        ordered = [(wave, device_id) for wave, ids in enumerate(plan) for device_id in ids]
        RolloutDevice.objects.bulk_create(
            (
                RolloutDevice(rollout=rollout, device_id=device_id, wave=wave, position=n)
                for n, (wave, device_id) in enumerate(ordered)
            ),
            batch_size=1000,
        )
    logger.info(
        "Rollout %d of profile %s v%d started over %d devices",
        rollout.pk, profile.name, rollout.to_version, len(ordered),
    )  # fmt: skip
    return rollout


def _transition(rollout_id: int, allowed: Sequence[str], to: str, verb: str) -> Rollout:
    with write_transaction():
        rollout = _locked(rollout_id)
        if rollout.status not in allowed:
            raise TransitionRefused(
                f"Rollout {rollout_id} is {rollout.status}: only a "
                f"{' or '.join(allowed)} rollout can be {verb}",
                rollout_id=rollout_id,
            )
        rollout.status = to
        rollout.updated_at = timezone.now()
        rollout.save(update_fields=["status", "updated_at"])
    return rollout


def rollout_pause(*, rollout_id: int, actor: Actor) -> Rollout:
    """No new wave starts while paused; devices already reached are still confirmed."""
    return _transition(rollout_id, [RolloutStatus.RUNNING], RolloutStatus.PAUSED, "paused")


def rollout_resume(*, rollout_id: int, actor: Actor) -> Rollout:
    return _transition(rollout_id, [RolloutStatus.PAUSED], RolloutStatus.RUNNING, "resumed")


def rollout_abort(*, rollout_id: int, actor: Actor) -> Rollout:
    """Stop and roll back: every device that got the new version goes back to the
    previous one (a revision and a reload each); status `aborted`."""
    return rollout_end(
        rollout_id=rollout_id,
        status=RolloutStatus.ABORTED,
        reason=f"aborted by {actor.name}",
        actor=actor,
    )


def rollout_end(*, rollout_id: int, status: str, reason: str, actor: Actor) -> Rollout:
    """End an active rollout: `succeeded` promotes the staged version for every matching
    device, any other status sends the devices that got it back (state `rolled_back`)."""
    now = timezone.now()
    with write_transaction():
        rollout = _locked(rollout_id)
        if not rollout.active:
            raise TransitionRefused(
                f"Rollout {rollout_id} is {rollout.status} already", rollout_id=rollout_id
            )
        rollout.status, rollout.reason = status, reason[:2000]
        rollout.finished_at = rollout.updated_at = now
        rollout.save(update_fields=["status", "reason", "finished_at", "updated_at"])
        if status != RolloutStatus.SUCCEEDED:
            rollout.devices.filter(state__in=GOT_VERSION).update(state=DeviceState.ROLLED_BACK)
    logger.info("Rollout %d of profile %s %s: %s", rollout.pk, rollout.profile_name, status, reason)
    rollout_settle(rollout=rollout, actor=actor)
    return rollout


def rollout_settle(*, rollout: Rollout, actor: Actor) -> None:
    """End the profile's staging of an ended rollout (promote or roll back). Runs again
    after a crash between the end and this: a profile no longer staging this rollout's
    version was settled already."""
    if not rollout.staging_open or rollout.active:
        return
    profile = Profile.objects.filter(name=rollout.profile_name).first()
    if profile is not None and profile.staged_version == rollout.to_version:
        promote = rollout.status == RolloutStatus.SUCCEEDED
        # (ended meanwhile by another call of this one)
        with contextlib.suppress(ProfileStaged, ProfileNotFound):
            profile_stage_end(name=rollout.profile_name, actor=actor, promote=promote)
    Rollout.objects.filter(pk=rollout.pk).update(staging_open=False)
    rollout.staging_open = False


# ---- the driver's steps ----------------------------------------------------------------


def _offline_reasons(device_ids: Iterable[str]) -> dict[str, str]:
    """Why each of these devices cannot be asked now: gone, no address, or last found
    unreachable (or never probed)."""
    ids = list(device_ids)
    rows = Device.objects.filter(device_id__in=ids).values_list(
        "device_id", "ip_address", "health__status"
    )
    found = {device_id: (ip, status) for device_id, ip, status in rows}
    reasons = {}
    for device_id in ids:
        if device_id not in found:
            reasons[device_id] = DELETED_ERROR
            continue
        ip, status = found[device_id]
        if not ip or status in (None, DeviceStatus.UNREACHABLE, DeviceStatus.UNKNOWN):
            reasons[device_id] = OFFLINE_ERROR
    return reasons


def wave_begin(*, rollout_id: int, index: int) -> list[str]:
    """The devices of wave `index` get the new version now (state `applied`, the confirm
    clock started; an offline one is staged all the same and waits for its return).
    Recorded first, then staged: a crash between the two is mended by `staging_mend`.
    Returns the ids staged; none when the rollout is no longer running."""
    now = timezone.now()
    with write_transaction():
        rollout = _locked(rollout_id)
        if rollout.status != RolloutStatus.RUNNING:
            return []
        wave = RolloutWave.objects.select_for_update().get(rollout=rollout, index=index)
        if wave.started_at is not None:
            return []
        rows = list(rollout.devices.filter(wave=index, state=DeviceState.PENDING))
        offline = _offline_reasons(d.device_id for d in rows)
        for row in rows:
            row.state, row.applied_at = DeviceState.APPLIED, now
            row.error = offline.get(row.device_id, "")
            row.offline = row.device_id in offline
        RolloutDevice.objects.bulk_update(rows, ["state", "applied_at", "error", "offline"])
        wave.started_at = now
        wave.completed_at = None if rows else now
        wave.save(update_fields=["started_at", "completed_at"])
        Rollout.objects.filter(pk=rollout.pk).update(updated_at=now)
    ids = [row.device_id for row in rows]
    _stage(rollout, ids)
    return ids


def _stage(rollout: Rollout, device_ids: list[str]) -> None:
    if not device_ids:
        return
    try:
        profile_stage_devices(
            name=rollout.profile_name, device_ids=device_ids, actor=driver_actor(rollout)
        )
    except (ProfileStaged, ProfileNotFound):
        logger.info("Rollout %d ended while its wave was staged", rollout.pk)


def staging_mend(*, rollout: Rollout) -> list[str]:
    """Stage the devices the rollout recorded as having the new version but the profile
    does not stage (a crash between `wave_begin`'s record and its staging). Staging an
    already staged device changes nothing, so nothing is applied twice."""
    got = set(rollout.devices.filter(state__in=GOT_VERSION).values_list("device_id", flat=True))
    staged = set(
        StagedDevice.objects.filter(profile_id=rollout.profile_name).values_list(
            "device_id", flat=True
        )
    )
    missing = sorted(got - staged)
    if missing:
        logger.warning("Rollout %d: staging %d devices a crash left out", rollout.pk, len(missing))
        _stage(rollout, missing)
    return missing


@dataclass(frozen=True)
class Check:
    """What one confirmation look found: `problem` None means confirmed."""

    device_id: str
    problem: str | None


def devices_checked(
    *, rollout_id: int, checks: Sequence[Check], timeout_seconds: int, now: datetime
) -> None:
    """Store what the confirmation looks found: confirmed, failed (the confirm timeout
    passed since the device got the version), or still waiting with the latest problem."""
    problems = {c.device_id: c.problem for c in checks}
    with write_transaction():
        rollout = _locked(rollout_id)
        if not rollout.active:
            return
        rows = list(
            rollout.devices.filter(device_id__in=problems, state=DeviceState.APPLIED, offline=False)
        )
        for row in rows:
            problem = problems[row.device_id]
            if problem is None:
                row.state, row.error, row.settled_at = DeviceState.CONFIRMED, "", now
            elif (now - row.applied_at).total_seconds() >= timeout_seconds:
                row.state, row.settled_at = DeviceState.FAILED, now
                row.error = f"not confirmed within {timeout_seconds} s: {problem}"[:2000]
            else:
                row.error = f"waiting: {problem}"[:2000]
        RolloutDevice.objects.bulk_update(rows, ["state", "error", "settled_at"])


def devices_back(*, rollout_id: int, device_ids: Sequence[str]) -> None:
    """Devices offline when their wave came answer again: their confirm clock starts now,
    and from now on they are confirmed (or fail) like the others."""
    now = timezone.now()
    with write_transaction():
        rollout = _locked(rollout_id)
        if not rollout.active:
            return
        rollout.devices.filter(
            device_id__in=device_ids, state=DeviceState.APPLIED, offline=True
        ).update(offline=False, applied_at=now, error="")


def wave_complete(*, rollout_id: int, index: int) -> None:
    with write_transaction():
        rollout = _locked(rollout_id)
        if rollout.active:
            RolloutWave.objects.filter(
                rollout=rollout, index=index, completed_at__isnull=True
            ).update(completed_at=timezone.now())
