"""`GET`/`PUT /devices/{id}/labels`: a device's labels (devices.labels, devices.labelling)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from devices import labelling
from devices.api import responses as r
from devices.api import serializers as s
from devices.api.base import DeviceApiView
from devices.api.views import BODY, DEVICE, _device, _errors


class DeviceLabelsView(DeviceApiView):
    @extend_schema(
        operation_id="device_labels_get",
        responses={200: r.DeviceLabelsSerializer, **_errors(*DEVICE)},
        tags=["devices"],
    )
    def get(self, request: Request, device_id: str) -> Response:
        """The device's labels."""
        return Response(r.DeviceLabelsSerializer(_device(device_id)).data)

    @extend_schema(
        operation_id="device_labels_set",
        request=s.DeviceLabelsSerializer,
        responses={
            200: r.DeviceLabelsSerializer,
            **_errors(*DEVICE, *BODY, "invalid_label"),
        },
        tags=["devices"],
    )
    def put(self, request: Request, device_id: str) -> Response:
        """Replace the device's labels (`{"labels": {}}` clears them): Kubernetes label
        syntax; `device_type`, `status` and `device_id` are reserved. Selectors pick
        devices by them; they reach the scrape targets and the device's Service. Not
        served config: no new version, no reload."""
        serializer = s.DeviceLabelsSerializer(data=self.body())
        serializer.is_valid(raise_exception=True)
        device = labelling.device_labels_set(
            device_id=device_id, labels=serializer.validated_data["labels"], actor=self.actor()
        )
        return Response(r.DeviceLabelsSerializer(device).data)
