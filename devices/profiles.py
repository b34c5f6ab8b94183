"""Profile writes: create, replace and delete profiles, and the staging a rollout drives
(some devices get the next version while the rest keep the current one).

Every write records a revision in its transaction and, after commit, re-layers the
devices the change can reach (devices.layering): a new device revision and a reload each
whose served config changed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.db.models import Max
from django.utils import timezone

from devices.choices import RevisionAction
from devices.exceptions import InvalidProfile, ProfileNotFound, ProfileStaged
from devices.labels import InvalidSelector, parse_selector
from devices.layering import devices_relayer
from devices.models import Device, Profile, ProfileRevision, StagedDevice
from devices.validation import PROFILE_NAME
from edgeserver.db import write_retrying_create_race, write_transaction
from users.actors import Actor

MAX_CONFIG_BYTES = 64 * 1024
# Keys a profile never sets: what the device is (selectors read it) and where it is.
FORBIDDEN_KEYS = ("device_type", "device_id", "ip_address")
# The only top-level keys a profile may set to null (the exporter crashes on a null section).
NULLABLE_KEYS = ("enabled_metrics", "metrics")


def _port_problem(key: str, value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        return f"{key} must be an integer 1-65535"
    return None


def _metrics_problem(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(v, bool) for v in value.values()):
        return "metrics must be an object of metric names to true or false (or null)"
    return None


def _enabled_metrics_problem(value: Any) -> str | None:
    if value is None or (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        return None
    return "enabled_metrics must be a list of strings or null"


def config_problem(config: Any) -> str | None:
    """Why `config` cannot be a profile's config, or None."""
    if not isinstance(config, dict):
        return "config must be an object of config keys"
    if len(json.dumps(config)) > MAX_CONFIG_BYTES:
        return f"config is larger than {MAX_CONFIG_BYTES} bytes"
    for key, value in config.items():
        if key in FORBIDDEN_KEYS:
            return f"config cannot set {key}: it is the device's own"
        if value is None and key not in NULLABLE_KEYS:
            return f"config cannot set {key} to null (the exporter cannot load a null section)"
        checks = {
            "port": lambda v: _port_problem("port", v),
            "reload_port": lambda v: _port_problem("reload_port", v),
            "metrics": _metrics_problem,
            "enabled_metrics": _enabled_metrics_problem,
        }
        problem = checks[key](value) if key in checks else None
        if problem:
            return problem
    return None


def profile_check(*, name: str, selector: Any, priority: Any, config: Any) -> None:
    """Raise InvalidProfile when these cannot be a profile (the API and the admin ask)."""
    if not isinstance(name, str) or not PROFILE_NAME.match(name):
        raise InvalidProfile(
            str(name), "a profile name is 1-63 lower-case letters, digits or '-', "
            "starting and ending with a letter or digit",
        )  # fmt: skip
    if not isinstance(selector, str):
        raise InvalidProfile(name, "selector must be a string (empty: every device)")
    try:
        parsed = parse_selector(selector)
    except InvalidSelector as exc:
        raise InvalidProfile(name, str(exc)) from None
    if any(r.key == "status" for r in parsed.requirements):
        raise InvalidProfile(name, "a profile cannot select by status (it changes with health)")
    if isinstance(priority, bool) or not isinstance(priority, int) or abs(priority) > 10**6:
        raise InvalidProfile(name, "priority must be an integer between -1000000 and 1000000")
    problem = config_problem(config)
    if problem:
        raise InvalidProfile(name, problem)


def matched_devices(profile: Profile) -> list[str]:
    """The ids of the devices `profile`'s selector matches now, in id order."""
    selector = parse_selector(profile.selector)
    # A profile never sets device_type, so the served one is the device's own.
    rows = Device.objects.order_by("device_id").values_list("device_id", "device_type", "labels")
    return [
        device_id
        for device_id, device_type, labels in rows.iterator(chunk_size=2000)
        if selector.matches({**(labels or {}), "device_type": device_type})
    ]


def _record(
    profile: Profile, action: str, actor: Actor, note: str = "", *, staged: bool = False
) -> None:
    """A revision of the profile as it is now (`staged`: of the version a rollout staged)."""
    ProfileRevision.objects.create(
        profile_name=profile.name,
        version=profile.staged_version if staged else profile.version,
        action=action,
        selector=profile.selector,
        priority=profile.priority,
        config=profile.staged_config if staged else profile.config,
        actor=actor.name,
        source=actor.source,
        note=note[:200],
        created_at=timezone.now(),
    )


def _next_version(name: str) -> int:
    latest = ProfileRevision.objects.filter(profile_name=name).aggregate(v=Max("version"))["v"]
    return (latest or 0) + 1


def _locked(name: str) -> Profile | None:
    return Profile.objects.select_for_update().filter(name=name).first()


@dataclass(frozen=True)
class ProfileWrite:
    profile: Profile
    created: bool
    changed: bool
    devices_changed: list[str]


def profile_put(
    *, name: str, selector: str, priority: int, config: Mapping[str, Any], actor: Actor
) -> ProfileWrite:
    """PUT /profiles/{name}: create or replace a profile; every device it matched or now
    matches is re-layered (and reloaded where its served config changed)."""
    profile_check(name=name, selector=selector, priority=priority, config=config)
    values = {"selector": selector, "priority": priority, "config": dict(config)}
    outcome = write_retrying_create_race(lambda: _put_locked(name, values, actor))
    if isinstance(outcome, ProfileWrite):
        return outcome
    profile, created, before = outcome
    reach = before | set(matched_devices(profile))
    note = f"profile {name} v{profile.version}"
    changed = devices_relayer(device_ids=reach, actor=actor, note=note)
    return ProfileWrite(profile, created=created, changed=True, devices_changed=changed)


def _put_locked(
    name: str, values: dict[str, Any], actor: Actor
) -> ProfileWrite | tuple[Profile, bool, set[str]]:
    """In profile_put's transaction: the unchanged answer, or the profile stored with its
    revision, whether it was created, and the devices it matched before."""
    profile = _locked(name)
    if profile is not None and profile.staged_config is not None:
        raise ProfileStaged(name, "a rollout of this profile is running: pause or abort it")
    if profile is not None and all(getattr(profile, k) == v for k, v in values.items()):
        return ProfileWrite(profile, created=False, changed=False, devices_changed=[])
    before = set(matched_devices(profile)) if profile is not None else set()
    created = profile is None
    now = timezone.now()
    if created:
        profile = Profile(name=name, created_at=now)
    # Past every number the history holds (an aborted rollout's included).
    profile.version = _next_version(name)
    for key, value in values.items():
        setattr(profile, key, value)
    profile.updated_at = now
    profile.save()
    _record(profile, RevisionAction.CREATED if created else RevisionAction.UPDATED, actor)
    return profile, created, before


def profile_delete(*, name: str, actor: Actor) -> list[str]:
    """DELETE /profiles/{name}: the devices it matched fall back to their other layers."""
    with write_transaction():
        profile = _locked(name)
        if profile is None:
            raise ProfileNotFound(name)
        if profile.staged_config is not None:
            raise ProfileStaged(name, "a rollout of this profile is running: abort it first")
        reach = matched_devices(profile)
        profile.version = _next_version(name)
        _record(profile, RevisionAction.DELETED, actor)
        profile.delete()
    return devices_relayer(device_ids=reach, actor=actor, note=f"profile {name} deleted")


def profile_get(*, name: str) -> Profile:
    profile = Profile.objects.filter(name=name).first()
    if profile is None:
        raise ProfileNotFound(name)
    return profile


def profile_history(*, name: str) -> list[ProfileRevision]:
    revisions = list(ProfileRevision.objects.filter(profile_name=name).order_by("-version"))
    if not revisions:
        raise ProfileNotFound(name)
    return revisions


def profile_stage_begin(*, name: str, config: Mapping[str, Any], actor: Actor) -> Profile:
    """A rollout starts: `config` becomes the profile's next version, for no device yet."""
    with write_transaction():
        profile = _locked(name)
        if profile is None:
            raise ProfileNotFound(name)
        if profile.staged_config is not None:
            raise ProfileStaged(name, "a rollout of this profile is already running")
        profile_check(
            name=name, selector=profile.selector, priority=profile.priority, config=config
        )
        profile.staged_config = dict(config)
        profile.staged_version = _next_version(name)
        profile.save(update_fields=["staged_config", "staged_version"])
    return profile


def profile_stage_devices(*, name: str, device_ids: Iterable[str], actor: Actor) -> list[str]:
    """These devices get the staged version now (a wave reached them); returns the ids
    whose served config changed (they were told to reload)."""
    ids = sorted(set(device_ids))
    with write_transaction():
        profile = _locked(name)
        if profile is None or profile.staged_config is None:
            raise ProfileStaged(name, "no rollout of this profile is running")
        StagedDevice.objects.bulk_create(
            [StagedDevice(profile=profile, device_id=i) for i in ids], ignore_conflicts=True
        )
    note = f"profile {name} v{profile.staged_version} (rollout)"
    return devices_relayer(device_ids=ids, actor=actor, note=note)


def profile_unstage_devices(*, name: str, device_ids: Iterable[str], actor: Actor) -> list[str]:
    """These devices go back to the profile's current version (a rollback)."""
    ids = sorted(set(device_ids))
    with write_transaction():
        StagedDevice.objects.filter(profile_id=name, device_id__in=ids).delete()
    profile = Profile.objects.filter(name=name).first()
    version = profile.version if profile is not None else "?"
    note = f"profile {name} back to v{version} (rollback)"
    return devices_relayer(device_ids=ids, actor=actor, note=note)


def profile_stage_end(*, name: str, actor: Actor, promote: bool) -> list[str]:
    """The rollout is over. `promote`: the staged config becomes the profile's config for
    every matching device; else it is dropped and the staged devices go back."""
    with write_transaction():
        profile = _locked(name)
        if profile is None or profile.staged_config is None:
            raise ProfileStaged(name, "no rollout of this profile is running")
        rows = StagedDevice.objects.filter(profile=profile)
        staged = list(rows.values_list("device_id", flat=True))
        if promote:
            profile.config = profile.staged_config
            profile.version = profile.staged_version or profile.version + 1
            profile.updated_at = timezone.now()
            _record(profile, RevisionAction.UPDATED, actor, note="rolled out")
        elif profile.staged_version is not None:
            # The staged version was served to some devices: its number stays taken, and
            # the history says what it was and that it went back.
            note = f"rolled back: devices back to v{profile.version}"
            _record(profile, RevisionAction.ROLLED_BACK, actor, note=note, staged=True)
        profile.staged_config = None
        profile.staged_version = None
        profile.save()
        StagedDevice.objects.filter(profile=profile).delete()
    reach = set(staged) | (set(matched_devices(profile)) if promote else set())
    note = f"profile {name} v{profile.version}" + (" (rolled out)" if promote else " (rollback)")
    return devices_relayer(device_ids=reach, actor=actor, note=note)
