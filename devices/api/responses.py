"""The bodies the device routes answer: `Serializer(value).data` is what a view sends, and
the same class is what the OpenAPI schema shows, so schema and body cannot drift.

The fleet-wide lists (device status items, config items, scrape targets) are rendered by
their own `to_representation` (DRF's field machinery costs tens of microseconds per device;
these run over the whole fleet); the fields they declare are the schema, and
tests/test_responses.py checks the two against each other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from devices import selectors
from devices.api.serializers import OpenObjectSerializer
from devices.choices import DeviceStatus, ReloadStatus, RevisionAction
from devices.client import host_port
from devices.labels import prometheus_label_name
from devices.models import Device
from devices.runtime import ReloadResult
from devices.selectors import ScrapeTarget, device_health, device_status
from users.choices import ChangeSource


def rfc3339(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.isoformat().replace("+00:00", "Z")


class ConstantField(serializers.Field):
    """A key whose value is the same in every body of a route (`"status": "deleted"`)."""

    def __init__(self, value: str, **kwargs: Any) -> None:
        self.value = value
        super().__init__(read_only=True, source="*", **kwargs)

    def to_representation(self, _: Any) -> str:
        return self.value


class ConstantFieldSchema(OpenApiSerializerFieldExtension):
    target_class = ConstantField

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        return {"type": "string", "enum": [self.target.value]}


# ---- config routes ------------------------------------------------------------------------


class ConfigDocumentSerializer(OpenObjectSerializer):
    """`GET /config/{id}`: what the exporter loads (Device.config_document; the route sends
    it pre-encoded, devices.served)."""

    device_type = serializers.CharField()
    port = serializers.IntegerField()
    reload_port = serializers.IntegerField()
    enabled_metrics = serializers.ListField(child=serializers.CharField(), required=False)

    def to_representation(self, device: Device) -> dict[str, Any]:
        return device.config_document()


class ConfigListItemSerializer(ConfigDocumentSerializer):
    device_id = serializers.CharField()

    def to_representation(self, device: Device) -> dict[str, Any]:
        return {"device_id": device.device_id, **device.config_document()}


NEXT_CURSOR_HELP = (
    "With `?limit=`: the `cursor` of the next page, null on the last page (absent from an "
    "answer that is not paged)"
)


def _paged(body: dict[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    """A page's body also says where the next page starts (view context `next_cursor`)."""
    if "next_cursor" in context:
        body["next_cursor"] = context["next_cursor"]
    return body


class ConfigListSerializer(serializers.Serializer):
    """From (device id, served config) rows (selectors.config_rows); `total` counts the
    configs of this answer (of the page, when paged)."""

    configs = ConfigListItemSerializer(many=True)
    total = serializers.IntegerField()
    next_cursor = serializers.CharField(required=False, allow_null=True, help_text=NEXT_CURSOR_HELP)

    def to_representation(self, rows: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
        configs = [{"device_id": device_id, **document} for device_id, document in rows]
        return _paged({"configs": configs, "total": len(configs)}, self.context)


class WriteResultSerializer(serializers.Serializer):
    """The answer to a config write (a devices.services.WriteResult)."""

    status = serializers.SerializerMethodField()
    device_id = serializers.CharField(source="device.device_id")
    reload_triggered = serializers.BooleanField()
    version = serializers.IntegerField(source="device.version")


class UpsertResponseSerializer(WriteResultSerializer):
    @extend_schema_field(serializers.ChoiceField(choices=["registered", "updated"]))
    def get_status(self, result: Any) -> str:
        return "registered" if result.created else "updated"


class CreateResponseSerializer(WriteResultSerializer):
    @extend_schema_field(serializers.ChoiceField(choices=["created"]))
    def get_status(self, result: Any) -> str:
        return "created"


class PatchResponseSerializer(WriteResultSerializer):
    @extend_schema_field(serializers.ChoiceField(choices=["patched"]))
    def get_status(self, result: Any) -> str:
        return "patched"


class RollbackResponseSerializer(WriteResultSerializer):
    """`restored_version` is the revision asked for (the view's context)."""

    restored_version = serializers.SerializerMethodField()

    @extend_schema_field(serializers.ChoiceField(choices=["rolled_back", "unchanged"]))
    def get_status(self, result: Any) -> str:
        return "rolled_back" if result.changed else "unchanged"

    def get_restored_version(self, result: Any) -> int:
        return self.context["restored_version"]


class DeleteResponseSerializer(serializers.Serializer):
    """From the deleted device's id."""

    status = ConstantField("deleted")
    device_id = serializers.CharField(source="*")


class BasicUpdateResponseSerializer(serializers.Serializer):
    status = ConstantField("updated")
    device_id = serializers.CharField(source="device.device_id")
    message = ConstantField("Device basic information updated (reload not triggered)")


class AddressClearedSerializer(serializers.Serializer):
    status = ConstantField("cleared")
    device_id = serializers.CharField(source="device.device_id")
    version = serializers.IntegerField(source="device.version")
    changed = serializers.BooleanField(help_text="False when the device had no address")


class RevisionSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    action = serializers.ChoiceField(choices=RevisionAction.choices)
    config = serializers.DictField(help_text="GET /config/{id} as it was, plus ip_address")
    actor = serializers.CharField()
    source = serializers.ChoiceField(choices=ChangeSource.choices)
    note = serializers.CharField(allow_blank=True, help_text="Why, when the server decided")
    created_at = serializers.DateTimeField()


class HistorySerializer(serializers.Serializer):
    """From `{"device_id", "revisions"}`."""

    device_id = serializers.CharField()
    revisions = RevisionSerializer(many=True)
    total = serializers.SerializerMethodField()

    def get_total(self, history: dict[str, Any]) -> int:
        return len(history["revisions"])


# ---- device routes ------------------------------------------------------------------------


class DeviceStatusItemSerializer(serializers.Serializer):
    """A device status item: `error` only when not healthy, `last_seen` only when known."""

    device_id = serializers.CharField()
    device_type = serializers.CharField()
    ip_address = serializers.CharField(allow_blank=True)
    port = serializers.IntegerField()
    reload_port = serializers.IntegerField()
    status = serializers.ChoiceField(choices=DeviceStatus.choices)
    last_seen = serializers.DateTimeField(required=False, help_text="Last healthy answer")
    error = serializers.CharField(required=False, help_text="Why it is not healthy")
    last_checked = serializers.DateTimeField(allow_null=True, help_text="Last probe")
    observed_ip = serializers.CharField(
        allow_null=True, help_text="Address the device last called GET/PUT /config/{id} from"
    )
    last_contact = serializers.DateTimeField(allow_null=True)
    config_in_sync = serializers.BooleanField(
        allow_null=True,
        help_text="Whether the device runs the config the server serves; null = not checked",
    )
    reload_pending = serializers.BooleanField(
        help_text="The config changed while the device was unreachable or its reload failed; "
        "the monitor reloads it when it answers again"
    )
    drifted_keys = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="When config_in_sync is false"
    )
    exporter_status = serializers.CharField(
        required=False, help_text="The exporter's own status (healthy, degraded, starting)"
    )
    address_shared_with = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="Other devices stored with the same ip_address (devices behind one NAT "
        "would be one scrape target); only when there are some",
    )
    labels = serializers.DictField(
        child=serializers.CharField(allow_blank=True),
        help_text="The operator's labels (`PUT /devices/{id}/labels`); `{}` when none",
    )

    def _shared_with(self, device: Device) -> list[str]:
        shared = self.context.get("shared_addresses")
        if shared is None:
            return selectors.devices_with_address(device.ip_address, excluding=device.device_id)
        return [i for i in shared.get(device.ip_address, ()) if i != device.device_id]

    def to_representation(self, device: Device) -> dict[str, Any]:
        status, error = device_status(device)
        health = device_health(device)
        item: dict[str, Any] = {
            "device_id": device.device_id,
            "device_type": device.device_type,
            "ip_address": device.ip_address,
            "port": device.port,
            "reload_port": device.reload_port,
            "status": status,
        }
        if health.last_seen is not None:
            item["last_seen"] = rfc3339(health.last_seen)
        if status != DeviceStatus.HEALTHY:
            item["error"] = error
        item["last_checked"] = rfc3339(health.last_checked)
        item["observed_ip"] = health.observed_ip or None
        item["last_contact"] = rfc3339(health.last_contact)
        item["config_in_sync"] = health.config_in_sync
        item["reload_pending"] = health.reload_pending
        if health.config_in_sync is False:
            item["drifted_keys"] = health.drifted_keys
        if health.exporter_status and status == DeviceStatus.HEALTHY:
            item["exporter_status"] = health.exporter_status
        shared_with = self._shared_with(device)
        if shared_with:
            item["address_shared_with"] = shared_with
        item["labels"] = device.labels
        return item


class DeviceListSerializer(serializers.Serializer):
    """`total`, `healthy` and `unhealthy` count the devices of this answer (of the page,
    when paged)."""

    devices = DeviceStatusItemSerializer(many=True)
    total = serializers.IntegerField()
    healthy = serializers.IntegerField()
    unhealthy = serializers.IntegerField()
    next_cursor = serializers.CharField(required=False, allow_null=True, help_text=NEXT_CURSOR_HELP)

    # Up to this many devices (a page), shared addresses are looked up for theirs only.
    PAGE_SIZED = 1000

    def to_representation(self, devices: Sequence[Device]) -> dict[str, Any]:
        if len(devices) <= self.PAGE_SIZED:
            shared = selectors.shared_addresses_among(d.ip_address for d in devices)
        else:
            shared = selectors.fleet_shared_addresses()
        item = DeviceStatusItemSerializer(context={"shared_addresses": shared}).to_representation
        items = [item(device) for device in devices]
        healthy = sum(1 for i in items if i["status"] == DeviceStatus.HEALTHY)
        body = {
            "devices": items,
            "total": len(items),
            "healthy": healthy,
            "unhealthy": len(items) - healthy,
        }
        return _paged(body, self.context)


class DeviceLabelsSerializer(serializers.Serializer):
    """`GET`/`PUT /devices/{id}/labels`: from the device."""

    device_id = serializers.CharField()
    labels = serializers.DictField(child=serializers.CharField(allow_blank=True))


class ReloadResponseSerializer(serializers.Serializer):
    """From a devices.runtime.ReloadResult that reloaded."""

    status = serializers.ChoiceField(choices=[ReloadStatus.RELOADED.value])
    device_id = serializers.CharField()


class ReloadFailureSerializer(serializers.Serializer):
    """`{"status": "failed", "device_id", "error"}`; a refused request has the usual shape."""

    status = serializers.ChoiceField(choices=[ReloadStatus.FAILED.value], required=False)
    device_id = serializers.CharField(required=False)
    error = serializers.CharField()
    message = serializers.CharField(required=False)

    def to_representation(self, result: ReloadResult) -> dict[str, Any]:
        return {"status": result.status, "device_id": result.device_id, "error": result.error}


class ReloadResultSerializer(serializers.Serializer):
    device_id = serializers.CharField()
    status = serializers.ChoiceField(choices=ReloadStatus.choices)
    error = serializers.CharField(required=False)

    def to_representation(self, result: ReloadResult) -> dict[str, Any]:
        item = {"device_id": result.device_id, "status": result.status}
        if result.status != ReloadStatus.RELOADED:
            item["error"] = result.error
        return item


class BulkReloadSerializer(serializers.Serializer):
    results = ReloadResultSerializer(many=True)
    total = serializers.IntegerField()
    success = serializers.IntegerField()
    failed = serializers.IntegerField(help_text="Failed and skipped")

    def to_representation(self, results: Sequence[ReloadResult]) -> dict[str, Any]:
        item = ReloadResultSerializer().to_representation
        success = sum(1 for r in results if r.status == ReloadStatus.RELOADED)
        return {
            "results": [item(result) for result in results],
            "total": len(results),
            "success": success,
            "failed": len(results) - success,
        }


class RunningConfigSerializer(OpenObjectSerializer):
    """The exporter's running config, relayed as the device returned it."""

    def to_representation(self, running: dict[str, Any]) -> dict[str, Any]:
        return running


class SummarySerializer(serializers.Serializer):
    """From devices.selectors.fleet_summary()."""

    total = serializers.IntegerField()
    healthy = serializers.IntegerField()
    unhealthy = serializers.IntegerField()
    by_device_type = serializers.DictField(child=serializers.IntegerField())
    by_status = serializers.DictField(child=serializers.IntegerField())


# ---- Prometheus HTTP service discovery ---------------------------------------------------


@extend_schema_field(
    {
        "type": "object",
        "required": ["device_id", "device_type", "__meta_edge_status", "__meta_edge_reload_port"],
        "properties": {
            "device_id": {"type": "string"},
            "device_type": {"type": "string"},
            "__meta_edge_status": {"type": "string", "enum": [c.value for c in DeviceStatus]},
            "__meta_edge_reload_port": {"type": "string", "pattern": "^[0-9]+$"},
        },
        "additionalProperties": {"type": "string"},
    }
)
class TargetLabelsField(serializers.DictField):
    """Label names to string values, as http_sd requires."""


class TargetGroupSerializer(serializers.Serializer):
    """One target group of Prometheus HTTP service discovery: the device's metrics address
    and its labels (all values strings, as the format requires).

    `device_id` and `device_type` stay on every series scraped from the device;
    `__meta_edge_*` exist for relabelling only (Prometheus drops labels starting with `__`
    once relabelling is done). The device's labels are there too, their keys as Prometheus
    label names (devices.labels.prometheus_label_name: `example.com/rack` is
    `example_com_rack`); where two keys give one name the last key in sorted order wins,
    and the server's own labels win over any of them.
    """

    targets = serializers.ListField(
        child=serializers.CharField(help_text="ip:port, IPv6 as [ip]:port"),
        min_length=1,
        max_length=1,
    )
    labels = TargetLabelsField()

    def to_representation(self, target: ScrapeTarget) -> dict[str, Any]:
        # The device's own labels first, so that the server's (device_id, device_type,
        # __meta_edge_*) win where a sanitised name meets one of them.
        labels = {prometheus_label_name(k): v for k, v in sorted(target.labels.items())}
        labels.update(
            {
                "device_id": target.device_id,
                "device_type": target.device_type,
                "__meta_edge_status": target.status,
                "__meta_edge_reload_port": str(target.reload_port),
            }
        )
        shared = self.context.get("shared_addresses", {}).get(target.ip_address, ())
        shared_with = [i for i in shared if i != target.device_id]
        if shared_with:
            labels["__meta_edge_address_shared_with"] = ",".join(shared_with)
        return {"targets": [host_port(target.ip_address, target.port)], "labels": labels}
