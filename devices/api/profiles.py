"""The profile routes (operators): `PUT/GET/DELETE /profiles/{name}`, `GET /profiles`,
`GET /profiles/{name}/history`, and the metric catalogue `GET /metrics/catalogue`."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from devices import profiles, selectors
from devices.api.base import DeviceApiView
from devices.api.responses import rfc3339
from devices.api.views import BODY, OPERATOR, _errors
from devices.models import Profile, ProfileRevision

PROFILE = (*OPERATOR, "Profile not found")


class StrictCharField(serializers.CharField):
    """A JSON string, never a number made into one (DRF's CharField takes 0 as "0")."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer, never a string or a boolean made into one."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class ProfileBodySerializer(serializers.Serializer):
    selector = StrictCharField(
        allow_blank=True,
        trim_whitespace=False,
        default="",
        help_text="Kubernetes label selector over labels and device_type; empty: every device",
    )
    priority = StrictIntegerField(default=0, help_text="Higher wins where keys overlap")
    config = serializers.DictField(
        help_text="Config keys for the matching devices (dicts merge key by key)"
    )


class ProfileSerializer(serializers.Serializer):
    name = serializers.CharField()
    selector = serializers.CharField()
    priority = serializers.IntegerField()
    config = serializers.DictField()
    version = serializers.IntegerField()
    rollout_version = serializers.IntegerField(
        source="staged_version", allow_null=True, help_text="The version a rollout is staging"
    )
    created_at = serializers.SerializerMethodField()
    updated_at = serializers.SerializerMethodField()

    def get_created_at(self, profile: Profile) -> str | None:
        return rfc3339(profile.created_at)

    def get_updated_at(self, profile: Profile) -> str | None:
        return rfc3339(profile.updated_at)


class ProfileDetailSerializer(ProfileSerializer):
    matched_devices = serializers.SerializerMethodField()

    def get_matched_devices(self, profile: Profile) -> list[str]:
        return profiles.matched_devices(profile)


class ProfileWriteSerializer(ProfileDetailSerializer):
    status = serializers.SerializerMethodField()
    devices_changed = serializers.SerializerMethodField(
        help_text="Devices whose served config changed (each got a revision and a reload)"
    )

    def get_status(self, profile: Profile) -> str:
        return self.context["status"]

    def get_devices_changed(self, profile: Profile) -> list[str]:
        return self.context["devices_changed"]


class ProfileListSerializer(serializers.Serializer):
    profiles = ProfileSerializer(many=True)
    total = serializers.IntegerField()


class ProfileRevisionSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    action = serializers.CharField()
    selector = serializers.CharField()
    priority = serializers.IntegerField()
    config = serializers.DictField()
    actor = serializers.CharField()
    source = serializers.CharField()
    note = serializers.CharField()
    created_at = serializers.SerializerMethodField()

    def get_created_at(self, revision: ProfileRevision) -> str | None:
        return rfc3339(revision.created_at)


class ProfileHistorySerializer(serializers.Serializer):
    name = serializers.CharField()
    revisions = ProfileRevisionSerializer(many=True)


class DeletedProfileSerializer(serializers.Serializer):
    status = serializers.CharField()
    name = serializers.CharField()
    devices_changed = serializers.ListField(child=serializers.CharField())


class ProfileListView(DeviceApiView):
    @extend_schema(
        operation_id="profiles_list",
        responses={200: ProfileListSerializer, **_errors(*OPERATOR)},
        tags=["profiles"],
    )
    def get(self, request: Request) -> Response:
        """Every profile, lowest priority first."""
        found = list(Profile.objects.all())
        return Response(ProfileListSerializer({"profiles": found, "total": len(found)}).data)


class ProfileDetailView(DeviceApiView):
    @extend_schema(
        operation_id="profile_get",
        responses={200: ProfileDetailSerializer, **_errors(*PROFILE)},
        tags=["profiles"],
    )
    def get(self, request: Request, name: str) -> Response:
        """A profile with the devices its selector matches now."""
        return Response(ProfileDetailSerializer(profiles.profile_get(name=name)).data)

    @extend_schema(
        operation_id="profile_put",
        request=ProfileBodySerializer,
        responses={
            200: ProfileWriteSerializer,
            201: ProfileWriteSerializer,
            **_errors(*OPERATOR, *BODY, "invalid_profile", "rollout_in_progress"),
        },
        tags=["profiles"],
    )
    def put(self, request: Request, name: str) -> Response:
        """Create or replace a profile: the devices it reaches get their new served config
        now (a revision and a reload each). Staged changes: `POST /profiles/{name}/rollouts`."""
        body = ProfileBodySerializer(data=self.body())
        body.is_valid(raise_exception=True)
        result = profiles.profile_put(name=name, actor=self.actor(), **body.validated_data)
        status = "created" if result.created else ("updated" if result.changed else "unchanged")
        context = {"status": status, "devices_changed": result.devices_changed}
        data = ProfileWriteSerializer(result.profile, context=context).data
        return Response(data, status=201 if result.created else 200)

    @extend_schema(
        operation_id="profile_delete",
        responses={200: DeletedProfileSerializer, **_errors(*PROFILE, "rollout_in_progress")},
        tags=["profiles"],
    )
    def delete(self, request: Request, name: str) -> Response:
        """Delete a profile: the devices it matched fall back to their other layers."""
        changed = profiles.profile_delete(name=name, actor=self.actor())
        body = {"status": "deleted", "name": name, "devices_changed": changed}
        return Response(DeletedProfileSerializer(body).data)


class ProfileHistoryView(DeviceApiView):
    @extend_schema(
        operation_id="profile_history",
        responses={200: ProfileHistorySerializer, **_errors(*PROFILE)},
        tags=["profiles"],
    )
    def get(self, request: Request, name: str) -> Response:
        """Every version of a profile, newest first (kept after a delete)."""
        revisions = profiles.profile_history(name=name)
        return Response(ProfileHistorySerializer({"name": name, "revisions": revisions}).data)


class CatalogueMetricSerializer(serializers.Serializer):
    name = serializers.CharField()
    devices = serializers.IntegerField(help_text="Devices that reported this metric name")
    enabled = serializers.IntegerField(help_text="Of them, devices served it enabled")


class CatalogueSerializer(serializers.Serializer):
    device_type = serializers.CharField(allow_null=True)
    devices = serializers.IntegerField(help_text="Devices of this type (all when not given)")
    metrics = CatalogueMetricSerializer(many=True)


class MetricCatalogueView(DeviceApiView):
    @extend_schema(
        operation_id="metrics_catalogue",
        parameters=[OpenApiParameter("device_type", str, description="Only this type")],
        responses={200: CatalogueSerializer, **_errors(*OPERATOR)},
        tags=["profiles"],
    )
    def get(self, request: Request) -> Response:
        """The metric names devices have reported (their `metrics` dict), with how many
        devices have each enabled in what they are served."""
        device_type = request.query_params.get("device_type") or None
        catalogue: dict[str, Any] = selectors.metric_catalogue(device_type=device_type)
        return Response(CatalogueSerializer(catalogue).data)
