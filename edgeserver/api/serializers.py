"""Shapes every app's API shares: the contract's error body and the server's health."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    """`{"error": <kind>, "device_id": <id, when known>, "message": <human text>}`."""

    error = serializers.CharField()
    device_id = serializers.CharField(required=False)
    message = serializers.CharField(required=False)


class JSONBooleanField(serializers.BooleanField):
    """A JSON `true` or `false`, nothing else (DRF's BooleanField also takes 1, "yes"...)."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class ServerHealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["healthy"])
    service = serializers.CharField()
    version = serializers.CharField()
    leader = serializers.BooleanField(
        help_text="Whether this replica is the leader, which does the singleton duties "
        "(probe rounds, drift checks, pending reloads, automatic Kubernetes syncs)"
    )


class ServerReadySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ready"])
