"""The cluster side of a reconcile: read the objects that stand there, apply changes."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from k8sbridge.client import KubeApi
from k8sbridge.exceptions import ClusterUnreachable, KubeError
from k8sbridge.objects import ENDPOINTSLICE, KINDS, SERVICE, Kind, Objects, owned_by_service
from k8sbridge.reconcile import Action, Change

# Per kind, the names that stand in the namespace (None: could not be listed).
NamesInUse = dict[Kind, set[str] | None]


def managed_objects(api: KubeApi, namespace: str) -> tuple[Objects, dict[Kind, str]]:
    """Every managed object (the kinds listed at once, each in pages), and why a kind
    could not be listed.

    A kind that could not be listed has no objects in the first map. Raises
    ClusterUnreachable when the API server does not answer.
    """

    def listed(kind: Kind) -> list[dict] | KubeError:
        try:
            return api.list(kind, namespace, kind.selector)
        except KubeError as exc:
            return exc

    # While the API server prepares one kind's page, the answer of another is parsed.
    with ThreadPoolExecutor(max_workers=len(KINDS), thread_name_prefix="k8s-list") as pool:
        answers = list(pool.map(listed, KINDS))
    actual: Objects = {}
    unlisted: dict[Kind, str] = {}
    for kind, items in zip(KINDS, answers, strict=True):
        if isinstance(items, KubeError):
            if items.unreachable:
                raise ClusterUnreachable(str(items)) from items
            unlisted[kind] = f"could not list {kind.resource}: {items}"
            continue
        actual.update({(kind, item["metadata"]["name"]): item for item in items})
    return actual, unlisted


def objects_named(api: KubeApi, namespace: str, name: str) -> Objects:
    """What bears `name`, of every kind, whoever's it is (three get calls).

    Raises ClusterUnreachable when the API server does not answer, KubeError on a refusal.
    """
    found: Objects = {}
    try:
        for kind in KINDS:
            obj = api.get(kind, namespace, name)
            if obj is not None:
                found[(kind, name)] = obj
    except KubeError as exc:
        if exc.unreachable:
            raise ClusterUnreachable(str(exc)) from exc
        raise
    return found


def names_in_use(api: KubeApi, namespace: str, pending: Sequence[Change]) -> NamesInUse:
    """For the kinds these changes would create objects of: the name of every object of
    that kind in the namespace, whoever's it is (paged lists; nothing else is kept).

    One list per page instead of one get per object to create; None for a kind that
    could not be listed (each create of it is then looked up on its own).
    """
    kinds = {change.kind for change in pending if change.action is Action.CREATE}
    found: NamesInUse = {}
    for kind in kinds:
        try:
            found[kind] = api.names(kind, namespace)
        except KubeError:
            found[kind] = None
    return found


def unlisted_in_the_way(
    api: KubeApi, namespace: str, pending: Sequence[Change], in_use: NamesInUse | None = None
) -> Objects:
    """Objects at the names these changes would create, which the list calls did not show:
    someone else's (no managed_by label), or ours without the labels the selector needs.

    One get per create whose name `in_use` holds (or does not know); raises KubeError.
    """
    found: Objects = {}
    for change in pending:
        if change.action is Action.CREATE:
            names = (in_use or {}).get(change.kind)
            if names is not None and change.name not in names:
                continue
            obj = api.get(change.kind, namespace, change.name)
            if obj is not None:
                found[(change.kind, change.name)] = obj
    return found


@dataclass
class Applied:
    """How far a sequence of changes got."""

    # The changes made (in a dry run: planned), as `create Service x`.
    done: list[str] = field(default_factory=list)
    # The change whose call failed, if one did.
    failed: str = ""
    error: str = ""
    # The failure was a call the API server never answered (refused, timed out).
    unanswered: bool = False

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def attempted(self) -> list[str]:
        """What a sync reports as a device's actions: the failed change included."""
        return [*self.done, self.failed] if self.failed else list(self.done)


def apply(api: KubeApi, namespace: str, pending: Sequence[Change], *, dry_run: bool) -> Applied:
    """The one place the bridge writes: make the changes in order; the first that fails
    (or is refused) ends the rest.

    A slice written after its Service gets that Service's uid as owner.
    """
    applied = Applied()
    service_uid: str | None = None
    for change in pending:
        if change.action is Action.REFUSE:
            applied.error = (
                f"{change.kind.name} {namespace}/{change.name} exists and is not managed by "
                "edge-metrics-server (no managed_by label); it was left untouched"
            )
            return applied
        if not dry_run:
            try:
                written = _make(api, namespace, change, service_uid)
            except KubeError as exc:
                applied.failed, applied.error = str(change), str(exc)
                applied.unanswered = exc.unreachable
                return applied
            if change.kind is SERVICE and written is not None:
                service_uid = written["metadata"].get("uid")
        applied.done.append(str(change))
    return applied


def _make(api: KubeApi, namespace: str, change: Change, service_uid: str | None) -> dict | None:
    if change.action is Action.DELETE:
        api.delete(change.kind, namespace, change.name)
        return None
    if change.action is Action.REPLACE:
        api.delete(change.kind, namespace, change.name)
    body = change.body
    assert body is not None, "only a delete has no body"
    if change.kind is ENDPOINTSLICE:
        body = owned_by_service(body, service_uid)
    return api.apply(change.kind, body)
