"""Desired against actual: the one diff (pure) behind sync, dry run, status and cleanup."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from k8sbridge.objects import (
    ENDPOINTS,
    ENDPOINTSLICE,
    KINDS,
    SERVICE,
    Kind,
    ObjectKey,
    Objects,
    is_managed,
    object_owner,
    owned_by_service,
    owned_fields,
)

# A sync applies the changes (k8sbridge.cluster), a dry run reports them, the status page
# counts a device with none pending as in sync; cleanup is the call with nothing desired.
# Writes go Service first (a slice's ownerReference needs the Service's uid); deletes go
# dependents first, so no moment has a Service whose endpoints are already gone.
WRITE_ORDER = {SERVICE: 0, ENDPOINTS: 1, ENDPOINTSLICE: 2}
DELETE_ORDER = {ENDPOINTSLICE: 0, ENDPOINTS: 1, SERVICE: 2}


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    # Delete and create again: a slice's addressType cannot be changed in place.
    REPLACE = "replace"
    DELETE = "delete"
    # The name is held by an object we do not manage: nothing is written, the device fails.
    REFUSE = "refuse"


@dataclass(frozen=True)
class Change:
    """One write (or refusal) a reconcile would make to one object."""

    action: Action
    kind: Kind
    name: str
    # The device the object is (create, update, replace, refuse) or was (delete) for.
    owner: str
    # What to apply; None for a delete.
    body: dict[str, Any] | None

    @property
    def writes(self) -> bool:
        return self.action in (Action.CREATE, Action.UPDATE, Action.REPLACE)

    def __str__(self) -> str:
        """How a sync's `actions` name it, e.g. `create Service edge-device-edge-01`."""
        return f"{self.action} {self.kind.name} {self.name}"


def changes(
    desired: Objects, actual: Objects, *, scope: Collection[str] | None = None
) -> list[Change]:
    """What makes `actual` hold `desired`, in the order to apply it.

    Both map (kind, name) to an object. An actual object we do not manage (no managed_by
    label) is never changed; a desired one in its place is refused. A managed object
    nobody desires is deleted (orphans, stale kinds, devices no longer published). With
    `scope`, only changes for those device ids are returned. Ordered by (device, name),
    each device's writes Service first, then its deletes dependents first.
    """
    found = []
    for key in desired.keys() | actual.keys():
        change = _change(key, desired, actual)
        if change is not None and (scope is None or change.owner in scope):
            found.append(change)
    return sorted(found, key=_apply_order)


def _change(key: ObjectKey, desired: Objects, actual: Objects) -> Change | None:
    kind, name = key
    want, have = desired.get(key), actual.get(key)
    if want is None:
        if have is None or not is_managed(have):
            return None
        return Change(Action.DELETE, kind, name, object_owner(have) or name, None)
    owner = object_owner(want) or name
    if have is not None and not is_managed(have):
        return Change(Action.REFUSE, kind, name, owner, want)
    service_pending = False
    if kind is ENDPOINTSLICE:
        # A slice is owned by its Service: by the uid of the one that stands, or by the
        # one about to be written, whose uid apply() sets.
        service = actual.get((SERVICE, name))
        service_pending = service is None or not is_managed(service)
        if not service_pending:
            want = owned_by_service(want, service["metadata"].get("uid"))
    action = _action(kind, want, have, service_pending=service_pending)
    return None if action is None else Change(action, kind, name, owner, want)


def _action(
    kind: Kind, want: dict[str, Any], have: dict[str, Any] | None, *, service_pending: bool
) -> Action | None:
    if have is None:
        return Action.CREATE
    if kind is ENDPOINTSLICE and have.get("addressType") != want["addressType"]:
        return Action.REPLACE
    if service_pending or owned_fields(kind, want) != owned_fields(kind, have):
        return Action.UPDATE
    return None


def _apply_order(change: Change) -> tuple[str, str, bool, int]:
    deleting = change.action is Action.DELETE
    rank = (DELETE_ORDER if deleting else WRITE_ORDER)[change.kind]
    return (change.owner, change.name, deleting, rank)


def by_device(pending: Iterable[Change]) -> dict[tuple[str, str], list[Change]]:
    """The changes by (device id, object name), each group in apply order.

    Groups touch different objects, so each can be applied on its own.
    """
    groups: dict[tuple[str, str], list[Change]] = {}
    for change in pending:
        groups.setdefault((change.owner, change.name), []).append(change)
    return groups


def at_name(objects: Objects, name: str) -> Objects:
    """The objects of every kind that bear `name`."""
    return {(kind, name): objects[(kind, name)] for kind in KINDS if (kind, name) in objects}
