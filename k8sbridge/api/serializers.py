"""Shapes of the Kubernetes routes: the views render every 200 body with these classes,
the schema documents the same ones, so the two cannot drift."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.fields import SkipField

from devices.choices import DeviceStatus
from edgeserver.api.serializers import JSONBooleanField
from k8sbridge.objects import MODES, POLICIES
from k8sbridge.results import ItemResult


class OmittedWhenEmpty(serializers.CharField):
    """A text the body carries only when there is one (the `error` of a failed item)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(required=False, **kwargs)

    def get_attribute(self, instance: Any) -> Any:
        value = super().get_attribute(instance)
        if not value:
            raise SkipField()
        return value


class Constant(serializers.ChoiceField):
    """A value every body of its shape carries, such as `"status": "synced"`."""

    def __init__(self, value: str, **kwargs: Any) -> None:
        super().__init__(choices=[value], **kwargs)
        self.value = value

    def get_attribute(self, instance: Any) -> str:
        return self.value


# A namespace as the routes take it: an RFC 1123 label, or empty for K8S_NAMESPACE.
NAMESPACE_SCHEMA = {
    "type": "string",
    "pattern": r"^(?:[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?)?$",
    "description": "Kubernetes namespace (an RFC 1123 label of at most 63 characters); "
    "absent or empty: K8S_NAMESPACE (`monitoring`)",
}


@extend_schema_field(NAMESPACE_SCHEMA)
class NamespaceField(serializers.Field):
    """Validated by the view (the same rule as `?namespace=`); documented here."""

    def to_internal_value(self, data: Any) -> Any:
        return data


class SyncRequestSerializer(serializers.Serializer):
    namespace = NamespaceField(required=False, allow_null=True)
    dry_run = JSONBooleanField(
        required=False, default=False, help_text="Compute the plan, write nothing"
    )


# One device (or the objects of an unregistered one) in a sync; the bodies of the
# per-device routes have its shape.
class SyncItemSerializer(serializers.Serializer):
    # The statuses this shape can carry (a subclass narrows them).
    STATUSES: tuple[str, ...] = ("created", "updated", "unchanged", "deleted", "failed")

    device_id = serializers.CharField()
    service = serializers.CharField()
    status = serializers.CharField()
    error = OmittedWhenEmpty(help_text="Only when failed")
    actions = serializers.ListField(
        child=serializers.CharField(),
        help_text="Object writes made (or, in a dry run, planned), e.g. `create Service x`",
    )

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["status"] = serializers.ChoiceField(choices=self.STATUSES)
        return fields


class SyncResponseSerializer(serializers.Serializer):
    status = Constant("synced")
    namespace = serializers.CharField()
    dry_run = serializers.BooleanField()
    created = SyncItemSerializer(many=True)
    updated = SyncItemSerializer(many=True)
    unchanged = SyncItemSerializer(many=True, help_text="Devices whose objects already matched")
    deleted = SyncItemSerializer(many=True)
    failed = SyncItemSerializer(many=True)
    total_healthy = serializers.IntegerField()
    errors = serializers.ListField(
        child=serializers.CharField(), help_text="Failures of the whole sync (a list call)"
    )
    warnings = serializers.ListField(child=serializers.CharField())


class DeviceSyncResponseSerializer(SyncItemSerializer):
    STATUSES = ("created", "updated", "failed")

    changed = serializers.BooleanField(
        help_text="False when the objects already matched (status is then `updated`)"
    )

    def to_representation(self, instance: ItemResult) -> dict[str, Any]:
        body = super().to_representation(instance)
        # The contract knows created/updated/failed for this route.
        if instance.status == "unchanged":
            body["status"] = "updated"
        return body


class StatusResourceSerializer(serializers.Serializer):
    device_id = serializers.CharField()
    service = serializers.CharField()
    service_exists = serializers.BooleanField()
    endpoints_exists = serializers.BooleanField()
    endpointslice_exists = serializers.BooleanField()
    registered = serializers.BooleanField(help_text="False for objects of an unknown device")
    device_status = serializers.ChoiceField(choices=DeviceStatus.choices, allow_null=True)
    published = serializers.BooleanField(help_text="Whether the device should have objects")
    in_sync = serializers.BooleanField(
        help_text="A sync would change nothing for it (never, for an unknown device's objects)"
    )
    error = OmittedWhenEmpty(help_text="Why the device cannot be published (a name collision)")


class StatusResponseSerializer(serializers.Serializer):
    kubernetes_enabled = serializers.BooleanField()
    namespace = serializers.CharField()
    mode = serializers.ChoiceField(choices=MODES)
    unhealthy_policy = serializers.ChoiceField(choices=POLICIES)
    total_k8s_resources = serializers.IntegerField(help_text="Managed Services")
    total_registered_devices = serializers.IntegerField()
    synced = serializers.IntegerField(
        help_text="Registered devices whose objects are exactly what a sync would leave "
        "(a device that should have none, and has none, is synced)"
    )
    unsynced = serializers.IntegerField(
        help_text="The other rows of `resources`: registered devices a sync would change, "
        "and every unregistered device whose objects a sync would delete"
    )
    resources = StatusResourceSerializer(many=True)
    errors = serializers.ListField(child=serializers.CharField())


class HealthResponseSerializer(serializers.Serializer):
    kubernetes_available = serializers.BooleanField()
    client_initialized = serializers.BooleanField()
    namespace_accessible = serializers.BooleanField()
    namespace = serializers.CharField()
    mode = serializers.ChoiceField(choices=MODES)
    api_server = serializers.CharField()
    ready = serializers.BooleanField(help_text="Every permission the mode needs is granted")
    rbac_permissions = serializers.DictField(
        child=serializers.CharField(),
        help_text="namespace, services, endpoints, endpointslices: `ok` or why not",
    )


class HealthUnavailableSerializer(serializers.Serializer):
    error = serializers.CharField()
    message = serializers.CharField()
    kubernetes_available = serializers.BooleanField()
    client_initialized = serializers.BooleanField()
    namespace_accessible = serializers.BooleanField()
    rbac_permissions = serializers.DictField(child=serializers.CharField())


class PortSerializer(serializers.Serializer):
    name = serializers.CharField(allow_null=True)
    port = serializers.IntegerField()


class ServiceStateSerializer(serializers.Serializer):
    name = serializers.CharField()
    exists = serializers.BooleanField()
    managed = serializers.BooleanField()
    owner = serializers.CharField(allow_null=True, help_text="Device id the object belongs to")
    cluster_ip = serializers.CharField(allow_null=True)
    ports = PortSerializer(many=True)


class EndpointsStateSerializer(serializers.Serializer):
    name = serializers.CharField()
    exists = serializers.BooleanField()
    managed = serializers.BooleanField()
    owner = serializers.CharField(allow_null=True)
    ready_addresses = serializers.ListField(child=serializers.CharField())
    not_ready_addresses = serializers.ListField(child=serializers.CharField())


class SliceEndpointSerializer(serializers.Serializer):
    addresses = serializers.ListField(child=serializers.CharField())
    ready = serializers.BooleanField(allow_null=True)


class EndpointSliceStateSerializer(serializers.Serializer):
    name = serializers.CharField()
    exists = serializers.BooleanField()
    managed = serializers.BooleanField()
    owner = serializers.CharField(allow_null=True)
    address_type = serializers.CharField(allow_null=True)
    endpoints = SliceEndpointSerializer(many=True)


class ResourcesResponseSerializer(serializers.Serializer):
    device_id = serializers.CharField()
    service = ServiceStateSerializer()
    endpoints = EndpointsStateSerializer()
    endpointslice = EndpointSliceStateSerializer()
    prometheus_target = serializers.CharField()


class DeleteResourcesResponseSerializer(SyncItemSerializer):
    STATUSES = ("deleted", "failed")


class CleanupFailureSerializer(serializers.Serializer):
    kind = serializers.CharField()
    name = serializers.CharField()
    error = serializers.CharField()


class CleanupResponseSerializer(serializers.Serializer):
    status = Constant("cleaned")
    namespace = serializers.CharField()
    dry_run = serializers.BooleanField()
    deleted_services = serializers.ListField(child=serializers.CharField())
    deleted_endpoints = serializers.ListField(child=serializers.CharField())
    deleted_endpointslices = serializers.ListField(child=serializers.CharField())
    failed = CleanupFailureSerializer(many=True)
    errors = serializers.ListField(child=serializers.CharField())
