"""Shapes of the Kubernetes routes: the sync request body and the documented responses."""

from __future__ import annotations

from rest_framework import serializers

from devices.choices import DeviceStatus


class SyncRequestSerializer(serializers.Serializer):
    namespace = serializers.CharField(
        required=False, help_text="Namespace to sync (default K8S_NAMESPACE, `monitoring`)"
    )
    dry_run = serializers.BooleanField(
        required=False, default=False, help_text="Compute the plan, write nothing"
    )


class SyncItemSerializer(serializers.Serializer):
    device_id = serializers.CharField()
    service = serializers.CharField()
    status = serializers.ChoiceField(
        choices=["created", "updated", "unchanged", "deleted", "failed"]
    )
    error = serializers.CharField(required=False, help_text="Only when failed")
    actions = serializers.ListField(
        child=serializers.CharField(),
        help_text="Object writes made (or, in a dry run, planned), e.g. `create Service x`",
    )


class SyncResponseSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["synced"])
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


class DeviceSyncResponseSerializer(serializers.Serializer):
    device_id = serializers.CharField()
    service = serializers.CharField()
    status = serializers.ChoiceField(choices=["created", "updated", "failed"])
    changed = serializers.BooleanField(
        help_text="False when the objects already matched (status is then `updated`)"
    )
    error = serializers.CharField(required=False)
    actions = serializers.ListField(child=serializers.CharField())


class StatusResourceSerializer(serializers.Serializer):
    device_id = serializers.CharField()
    service = serializers.CharField()
    service_exists = serializers.BooleanField()
    endpoints_exists = serializers.BooleanField()
    endpointslice_exists = serializers.BooleanField()
    registered = serializers.BooleanField(help_text="False for objects of an unknown device")
    device_status = serializers.ChoiceField(choices=DeviceStatus.choices, allow_null=True)
    published = serializers.BooleanField(help_text="Whether the device should have objects")
    in_sync = serializers.BooleanField(help_text="The cluster holds exactly what it should")
    error = serializers.CharField(required=False)


class StatusResponseSerializer(serializers.Serializer):
    kubernetes_enabled = serializers.BooleanField()
    namespace = serializers.CharField()
    mode = serializers.ChoiceField(choices=["both", "endpointslice", "endpoints"])
    unhealthy_policy = serializers.ChoiceField(choices=["delete", "not-ready"])
    total_k8s_resources = serializers.IntegerField(help_text="Managed Services")
    total_registered_devices = serializers.IntegerField()
    synced = serializers.IntegerField()
    unsynced = serializers.IntegerField()
    resources = StatusResourceSerializer(many=True)
    errors = serializers.ListField(child=serializers.CharField())


class HealthResponseSerializer(serializers.Serializer):
    kubernetes_available = serializers.BooleanField()
    client_initialized = serializers.BooleanField()
    namespace_accessible = serializers.BooleanField()
    namespace = serializers.CharField()
    mode = serializers.ChoiceField(choices=["both", "endpointslice", "endpoints"])
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


class DeleteResourcesResponseSerializer(serializers.Serializer):
    device_id = serializers.CharField()
    service = serializers.CharField()
    status = serializers.ChoiceField(choices=["deleted", "failed"])
    error = serializers.CharField(required=False)
    actions = serializers.ListField(child=serializers.CharField())


class CleanupFailureSerializer(serializers.Serializer):
    kind = serializers.CharField()
    name = serializers.CharField()
    error = serializers.CharField()


class CleanupResponseSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["cleaned"])
    namespace = serializers.CharField()
    dry_run = serializers.BooleanField()
    deleted_services = serializers.ListField(child=serializers.CharField())
    deleted_endpoints = serializers.ListField(child=serializers.CharField())
    deleted_endpointslices = serializers.ListField(child=serializers.CharField())
    failed = CleanupFailureSerializer(many=True)
    errors = serializers.ListField(child=serializers.CharField())
