"""What the bridge's operations return: plain values that the routes' output serializers,
the command and the admin render (k8sbridge/api/serializers.py documents each field)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ItemResult:
    """The outcome for one device (or one orphaned name) in a sync or a delete."""

    device_id: str
    service: str
    status: str
    error: str = ""
    actions: list[str] = field(default_factory=list)
    # The failure was a call the API server never answered (refused, timed out).
    unanswered: bool = False

    @property
    def changed(self) -> bool:
        """False when the device's objects already matched."""
        return self.status != "unchanged"

    def __str__(self) -> str:
        return f"{self.device_id} ({self.service}): {self.error}"


@dataclass
class RunResult:
    """What a sync or a cleanup reports besides its objects (k8sbridge.runs records it)."""

    namespace: str
    dry_run: bool = False
    failed: list[Any] = field(default_factory=list)
    # Problems that concern the whole run (a kind that could not be listed).
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.errors

    def counts(self) -> dict[str, int]:
        """The figures a SyncRun keeps (created, deleted, failed, ...)."""
        raise NotImplementedError

    def problems(self) -> list[str]:
        """Readable lines: the run's own errors, then each failure."""
        return [*self.errors, *map(str, self.failed)]


@dataclass
class SyncResult(RunResult):
    created: list[ItemResult] = field(default_factory=list)
    updated: list[ItemResult] = field(default_factory=list)
    unchanged: list[ItemResult] = field(default_factory=list)
    deleted: list[ItemResult] = field(default_factory=list)
    failed: list[ItemResult] = field(default_factory=list)
    # Devices in scope that should have no objects (not healthy, no IP), with why.
    not_published: list[ItemResult] = field(default_factory=list)
    total_healthy: int = 0
    warnings: list[str] = field(default_factory=list)

    def add(self, item: ItemResult) -> None:
        getattr(self, item.status).append(item)

    def sort(self) -> None:
        """Every list by (device id, name), the order the routes show."""
        for items in (self.created, self.updated, self.unchanged, self.deleted, self.failed):
            items.sort(key=lambda i: (i.device_id, i.service))

    def item_for(self, device_id: str) -> ItemResult | None:
        """The device's write (created, updated, unchanged or failed), if it had one."""
        for item in [*self.created, *self.updated, *self.unchanged, *self.failed]:
            if item.device_id == device_id:
                return item
        return None

    def counts(self) -> dict[str, int]:
        return {
            "created": len(self.created),
            "updated": len(self.updated),
            "unchanged": len(self.unchanged),
            "deleted": len(self.deleted),
            "failed": len(self.failed),
            "total_healthy": self.total_healthy,
        }


@dataclass
class CleanupFailure:
    kind: str
    name: str
    error: str

    def __str__(self) -> str:
        return f"{self.kind} {self.name}: {self.error}"


@dataclass
class CleanupResult(RunResult):
    deleted_services: list[str] = field(default_factory=list)
    deleted_endpoints: list[str] = field(default_factory=list)
    deleted_endpointslices: list[str] = field(default_factory=list)
    failed: list[CleanupFailure] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        deleted = self.deleted_services + self.deleted_endpoints + self.deleted_endpointslices
        return {"deleted": len(deleted), "failed": len(self.failed)}


@dataclass
class StatusRow:
    """One registered device, or the objects of an unregistered one (an orphan)."""

    device_id: str
    service: str
    service_exists: bool
    endpoints_exists: bool
    endpointslice_exists: bool
    registered: bool
    device_status: str | None
    published: bool
    in_sync: bool
    error: str = ""


@dataclass
class ClusterStatus:
    namespace: str
    mode: str
    unhealthy_policy: str
    total_k8s_resources: int
    total_registered_devices: int
    synced: int
    unsynced: int
    resources: list[StatusRow]
    errors: list[str]
    kubernetes_enabled: bool = True


@dataclass
class ClusterHealth:
    kubernetes_available: bool
    namespace_accessible: bool
    namespace: str
    mode: str
    api_server: str
    ready: bool
    rbac_permissions: dict[str, str]
    client_initialized: bool = True


@dataclass
class ObjectState:
    """Whether an object of a device's name exists, is ours, and whose it is."""

    name: str
    exists: bool
    managed: bool
    owner: str | None


@dataclass
class Port:
    name: str | None
    port: int


@dataclass
class ServiceState(ObjectState):
    cluster_ip: str | None
    ports: list[Port]


@dataclass
class EndpointsState(ObjectState):
    ready_addresses: list[str]
    not_ready_addresses: list[str]


@dataclass
class SliceEndpoint:
    addresses: list[str]
    ready: bool | None


@dataclass
class EndpointSliceState(ObjectState):
    address_type: str | None
    endpoints: list[SliceEndpoint]


@dataclass
class DeviceResources:
    device_id: str
    service: ServiceState
    endpoints: EndpointsState
    endpointslice: EndpointSliceState
    prometheus_target: str
