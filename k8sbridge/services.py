"""The bridge's operations: sync (all devices, some, or a dry run), status, cleanup and
deleting one device's objects, each a reconcile of desired and actual objects."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed

from django.conf import settings

from devices.choices import DeviceStatus
from devices.models import Device
from k8sbridge.choices import SyncAction, SyncTrigger
from k8sbridge.client import KubeApi, kube_api
from k8sbridge.cluster import (
    Applied,
    NamesInUse,
    apply,
    managed_objects,
    names_in_use,
    objects_named,
    unlisted_in_the_way,
)
from k8sbridge.exceptions import ClusterUnreachable, KubeError
from k8sbridge.objects import (
    ENDPOINTS,
    ENDPOINTSLICE,
    SERVICE,
    DevicePlan,
    Kind,
    Objects,
    desired_objects,
    is_managed,
    kinds_for,
    object_owner,
    service_name,
)
from k8sbridge.reconcile import DELETE_ORDER, Action, Change, at_name, by_device, changes
from k8sbridge.results import (
    CleanupFailure,
    CleanupResult,
    ClusterStatus,
    ItemResult,
    StatusRow,
    SyncResult,
)
from k8sbridge.runs import recorded
from k8sbridge.selectors import device_plan, fleet_plans, plans_for

logger = logging.getLogger(__name__)

# After this many devices in a row got no answer, the rest of a sync is not attempted:
# each would only wait for its own timeout.
UNANSWERED_LIMIT = 3
NOT_ATTEMPTED = "not attempted: the Kubernetes API server stopped answering"
NOT_LEADING = "not attempted: this replica stopped being the leader during the sync"
NOT_PUBLISHED = "device is not published"

Progress = Callable[[int, int], None]


def cluster_sync(
    *,
    namespace: str,
    device_ids: Collection[str] | None = None,
    dry_run: bool = False,
    trigger: str = SyncTrigger.API,
    progress: Progress | None = None,
    still_leading: Callable[[], bool] | None = None,
) -> SyncResult:
    """Make `namespace` hold the objects of the published devices and nothing else of ours.

    Desired objects come from the database (the stored status, never a probe), actual ones
    from one list call per kind; only the changes between them are applied.

    `device_ids` limits the sync to those devices (their objects are written or deleted;
    nobody else's are touched). `dry_run` reads but writes nothing; its result is the plan.
    `still_leading` (the leader's automatic syncs) is asked before each device is written:
    once it says no, the rest is not attempted, so a replica that lost the leadership
    stops writing before another one starts.
    Raises ClientUnavailable (no configuration) or ClusterUnreachable (no answer).
    """
    api = kube_api()
    try:
        result = recorded(
            lambda: _sync(api, namespace, device_ids, dry_run, progress, still_leading),
            action=SyncAction.SYNC,
            trigger=trigger,
            namespace=namespace,
            scope=device_ids,
            dry_run=dry_run,
        )
    except ClusterUnreachable as exc:
        logger.warning("Kubernetes sync of %s failed: %s", namespace, exc)
        raise
    logger.info(
        "Kubernetes sync of %s%s: %d created, %d updated, %d unchanged, %d deleted, %d failed",
        namespace,
        " (dry run)" if dry_run else "",
        len(result.created),
        len(result.updated),
        len(result.unchanged),
        len(result.deleted),
        len(result.failed),
    )
    for item in result.failed:
        logger.warning("Kubernetes sync of %s failed: %s", item.device_id, item.error)
    return result


def _sync(
    api: KubeApi,
    namespace: str,
    device_ids: Collection[str] | None,
    dry_run: bool,
    progress: Progress | None,
    still_leading: Callable[[], bool] | None = None,
) -> SyncResult:
    mode = settings.K8S_ENDPOINTS_MODE
    scope = None if device_ids is None else set(device_ids)
    plans, desired, (actual, unlisted) = _planned_and_listed(api, namespace, scope, mode)
    in_scope = [p for p in plans if scope is None or p.device_id in scope]
    result = SyncResult(namespace=namespace, dry_run=dry_run)
    result.total_healthy = sum(
        1 for p in in_scope if p.status == DeviceStatus.HEALTHY and p.device.ip_address
    )
    result.errors, result.warnings = _list_problems(unlisted, mode)
    if result.errors:
        # Without the actual objects nothing can be compared, so nothing is written or
        # deleted; every device that should be published is reported as not synced.
        reason = "not synced: " + "; ".join(result.errors)
        for plan in in_scope:
            if plan.publish or plan.failed:
                result.add(_failed(plan, plan.problem if plan.failed else reason))
        return result
    groups = by_device(changes(desired, actual, scope=scope))
    in_use = names_in_use(api, namespace, [c for group in groups.values() for c in group])
    applier = _Applier(api, namespace, desired, actual, in_use, scope=scope, dry_run=dry_run)
    applier.still_leading = still_leading
    done = 0

    def advanced() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, len(in_scope))

    work: list[tuple[str, str, list[Change], bool]] = []
    for plan in in_scope:
        if plan.failed:
            result.add(_failed(plan, plan.problem))
        elif not plan.publish:
            result.not_published.append(_failed(plan, plan.problem))
        else:
            pending = groups.pop((plan.device_id, plan.service), [])
            work.append((plan.device_id, plan.service, pending, True))
            continue
        advanced()
    # What is left deletes objects nobody should have: orphans, unpublished devices'.
    work += [(owner, name, pending, False) for (owner, name), pending in groups.items()]
    for item, published in applier.each(work):
        result.add(item)
        if published:
            advanced()
    result.sort()
    return result


def _planned_and_listed(
    api: KubeApi, namespace: str, scope: set[str] | None, mode: str
) -> tuple[list[DevicePlan], Objects, tuple[Objects, dict[Kind, str]]]:
    """The devices' plans and desired objects, and what the cluster holds: listed while
    the devices are planned (the lists mostly wait on the API server, the planning is this
    process's work)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="k8s-listing") as pool:
        listing = pool.submit(managed_objects, api, namespace)
        plans = fleet_plans() if scope is None else plans_for(scope)
        desired = desired_objects(plans, namespace, mode=mode)
        return plans, desired, listing.result()


def _failed(plan: DevicePlan, reason: str) -> ItemResult:
    return ItemResult(plan.device_id, plan.service, "failed", reason)


def _list_problems(unlisted: dict[Kind, str], mode: str) -> tuple[list[str], list[str]]:
    """Kinds that could not be listed: errors when the mode writes them, else warnings."""
    written = kinds_for(mode)
    errors = [message for kind, message in unlisted.items() if kind in written]
    warnings = [
        f"{message} (left-over {kind.name} objects are not removed)"
        for kind, message in unlisted.items()
        if kind not in written
    ]
    return errors, warnings


class _Applier:
    """Applies the changes of each device as one item of a sync's result, up to
    K8S_WRITE_CONCURRENCY devices at a time (a device's own changes stay in order).

    After UNANSWERED_LIMIT devices in a row whose calls got no answer, the rest is not
    attempted.
    """

    def __init__(
        self,
        api: KubeApi,
        namespace: str,
        desired: Objects,
        actual: Objects,
        in_use: NamesInUse,
        *,
        scope: Collection[str] | None,
        dry_run: bool,
    ) -> None:
        self.api, self.namespace = api, namespace
        self.desired, self.actual, self.in_use = desired, actual, in_use
        self.scope, self.dry_run = scope, dry_run
        # Asked before each device is written (the leader's automatic syncs).
        self.still_leading: Callable[[], bool] | None = None
        self.unanswered = 0
        self._lock = threading.Lock()

    def each(
        self, work: list[tuple[str, str, list[Change], bool]]
    ) -> Iterator[tuple[ItemResult, bool]]:
        """(item, published) for each (device id, name, changes, published), as they end:
        those with nothing to change at once, the others from the pool of writers."""
        writing = []
        for device_id, name, pending, published in work:
            if pending:
                writing.append((device_id, name, pending, published))
            else:
                yield self.item(device_id, name, pending, published=published), published
        if not writing:
            return
        workers = min(settings.K8S_WRITE_CONCURRENCY, len(writing))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="k8s-write") as pool:
            futures = {
                pool.submit(self.item, device_id, name, pending, published=published): published
                for device_id, name, pending, published in writing
            }
            for future in as_completed(futures):
                yield future.result(), futures[future]

    def item(
        self, device_id: str, name: str, pending: list[Change], *, published: bool
    ) -> ItemResult:
        with self._lock:
            given_up = self.unanswered >= UNANSWERED_LIMIT
        if given_up:
            return ItemResult(device_id, name, "failed", NOT_ATTEMPTED)
        if pending and self.still_leading is not None and not self.still_leading():
            return ItemResult(device_id, name, "failed", NOT_LEADING)
        try:
            pending = self._with_unlisted(device_id, name, pending)
        except KubeError as exc:
            applied = Applied(error=str(exc), unanswered=exc.unreachable)
        else:
            applied = apply(self.api, self.namespace, pending, dry_run=self.dry_run)
        with self._lock:
            self.unanswered = self.unanswered + 1 if applied.unanswered else 0
        if not applied.ok:
            status = "failed"
        elif not published:
            status = "deleted"
        elif any(c.action is Action.CREATE and c.kind is SERVICE for c in pending):
            status = "created"
        else:
            status = "updated" if pending else "unchanged"
        return ItemResult(
            device_id, name, status, applied.error, applied.attempted, applied.unanswered
        )

    def _with_unlisted(self, device_id: str, name: str, pending: list[Change]) -> list[Change]:
        """The device's changes once the names it would create are known to be free.

        An object in the way that the lists did not show (someone else's, to refuse; or
        ours without the selector's labels, to update) changes what the device needs.
        """
        found = unlisted_in_the_way(self.api, self.namespace, pending, self.in_use)
        if not found:
            return pending
        actual = at_name(self.actual, name) | found
        again = changes(at_name(self.desired, name), actual, scope=self.scope)
        return [change for change in again if change.owner == device_id]


def device_sync(*, device: Device, namespace: str, trigger: str = SyncTrigger.API) -> ItemResult:
    """Sync one device. A device that should not be published gets its objects removed and
    is reported as failed with why (`device is not healthy`, `no IP address registered`)."""
    device_id = device.device_id
    result = cluster_sync(namespace=namespace, device_ids=[device_id], trigger=trigger)
    item = result.item_for(device_id)
    if item is not None:
        return item
    skipped = next((i for i in result.not_published if i.device_id == device_id), None)
    reason = skipped.error if skipped else NOT_PUBLISHED
    deleted = [a for i in result.deleted if i.device_id == device_id for a in i.actions]
    return ItemResult(device_id, service_name(device_id), "failed", reason, deleted)


def cluster_status(*, namespace: str) -> ClusterStatus:
    """Per device: which objects exist, and whether it is in sync: a dry run of a full
    sync has no change pending for it. Objects of unregistered devices never are."""
    mode = settings.K8S_ENDPOINTS_MODE
    actual, unlisted = managed_objects(kube_api(), namespace)
    errors, warnings = _list_problems(unlisted, mode)
    plans = fleet_plans()
    pending = {c.owner for c in changes(desired_objects(plans, namespace, mode=mode), actual)}
    rows = [
        _device_row(plan, actual, not errors and plan.device_id not in pending) for plan in plans
    ]
    orphans = _orphan_rows(actual, {plan.device_id for plan in plans})
    synced = sum(row.in_sync for row in rows)
    return ClusterStatus(
        namespace=namespace,
        mode=mode,
        unhealthy_policy=settings.K8S_UNHEALTHY_POLICY,
        total_k8s_resources=sum(1 for kind, _ in actual if kind is SERVICE),
        total_registered_devices=len(plans),
        synced=synced,
        unsynced=len(rows) - synced + len(orphans),
        resources=rows + orphans,
        errors=errors + warnings,
    )


def _row(device_id: str, name: str, present: Collection[Kind], **fields) -> StatusRow:
    return StatusRow(
        device_id=device_id,
        service=name,
        service_exists=SERVICE in present,
        endpoints_exists=ENDPOINTS in present,
        endpointslice_exists=ENDPOINTSLICE in present,
        **fields,
    )


def _device_row(plan: DevicePlan, actual: Objects, in_sync: bool) -> StatusRow:
    present = [
        kind
        for (kind, name), obj in at_name(actual, plan.service).items()
        if is_managed(obj) and object_owner(obj) == plan.device_id
    ]
    return _row(
        plan.device_id,
        plan.service,
        present,
        registered=True,
        device_status=plan.status,
        published=plan.publish,
        in_sync=in_sync,
        error=plan.problem if plan.failed else "",
    )


def _orphan_rows(actual: Objects, registered: Collection[str]) -> list[StatusRow]:
    """Managed objects of devices that are not registered, one row per name."""
    owners: dict[str, str] = {}
    present: dict[str, list[Kind]] = {}
    for (kind, name), obj in actual.items():
        owner = object_owner(obj) or name
        if owner not in registered:
            owners.setdefault(name, owner)
            present.setdefault(name, []).append(kind)
    return [
        _row(
            owners[name],
            name,
            kinds,
            registered=False,
            device_status=None,
            published=False,
            in_sync=False,
        )
        for name, kinds in sorted(present.items())
    ]


def cluster_cleanup(
    *, namespace: str, dry_run: bool = False, trigger: str = SyncTrigger.API
) -> CleanupResult:
    """Delete every object labelled managed_by=edge-metrics-server in `namespace`."""
    api = kube_api()
    return recorded(
        lambda: _cleanup(api, namespace, dry_run),
        action=SyncAction.CLEANUP,
        trigger=trigger,
        namespace=namespace,
        dry_run=dry_run,
    )


def _cleanup(api: KubeApi, namespace: str, dry_run: bool) -> CleanupResult:
    actual, unlisted = managed_objects(api, namespace)
    result = CleanupResult(namespace=namespace, dry_run=dry_run, errors=list(unlisted.values()))
    deleted = {
        SERVICE: result.deleted_services,
        ENDPOINTS: result.deleted_endpoints,
        ENDPOINTSLICE: result.deleted_endpointslices,
    }
    # Nothing desired: every managed object goes, each on its own (one failure stops none).
    for change in changes({}, actual):
        applied = apply(api, namespace, [change], dry_run=dry_run)
        if applied.ok:
            deleted[change.kind].append(change.name)
        else:
            result.failed.append(CleanupFailure(change.kind.name, change.name, applied.error))
    for names in deleted.values():
        names.sort()
    return result


def device_objects_delete(*, device: Device, namespace: str) -> ItemResult:
    """Delete a device's objects; objects not managed by us, or another device's, stay."""
    api = kube_api()
    device_id = device.device_id
    name = device_plan(device).service
    try:
        found = objects_named(api, namespace, name)
    except KubeError as exc:
        return ItemResult(device_id, name, "failed", str(exc))
    applied = apply(api, namespace, changes({}, found, scope={device_id}), dry_run=False)
    if applied.unanswered and not applied.done:
        raise ClusterUnreachable(applied.error)
    refused = _refusals(found, device_id)
    if applied.ok and refused:
        error = "; ".join(refused) + "; left untouched"
        return ItemResult(device_id, name, "failed", error, applied.done)
    return ItemResult(
        device_id, name, "deleted" if applied.ok else "failed", applied.error, applied.done
    )


def _refusals(found: Objects, device_id: str) -> list[str]:
    """Why objects at a device's name are not its own to delete, dependents first."""
    refused = []
    for (kind, name), obj in sorted(found.items(), key=lambda entry: DELETE_ORDER[entry[0][0]]):
        owner = object_owner(obj) if is_managed(obj) else None
        if owner == device_id:
            continue
        if owner:
            refused.append(f"{kind.name} {name} belongs to device {owner}")
        else:
            refused.append(f"{kind.name} {name} is not managed by edge-metrics-server")
    return refused
