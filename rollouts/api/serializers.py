"""What the rollout routes take and answer: the request body, and a rollout with its waves
and devices (the same classes document the schema)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from devices.api.responses import rfc3339
from rollouts.choices import DeviceState, RolloutStatus
from rollouts.models import Rollout, RolloutDevice
from rollouts.selectors import Progress, WaveProgress, rollout_progress


def _integer(low: int, high: int, description: str) -> dict[str, Any]:
    return {"type": "integer", "minimum": low, "maximum": high, "description": description}


# The strategy as the schema says it (the service checks it: rollouts.strategy).
STRATEGY_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "canary": _integer(0, 100_000, "Devices first (default 1)"),
        "waves": {
            "type": "array",
            "items": _integer(1, 100, "A cumulative percentage"),
            "minItems": 1,
            "maxItems": 20,
            "description": "Ascending cumulative percentages of the devices after the canary, "
            "ending at 100 (default [10, 50, 100])",
        },
        "wave_wait_seconds": _integer(0, 86_400, "After a wave completed (default 60)"),
        "confirm_timeout_seconds": _integer(1, 86_400, "Per device (default 120)"),
        "max_failure_percent": {
            "type": "number",
            "minimum": 0,
            "maximum": 100,
            "description": "Of the devices attempted (default 10)",
        },
    },
}


@extend_schema_field(STRATEGY_SCHEMA)
class StrategyField(serializers.JSONField):
    """Any JSON here: the service checks it, so every problem is `invalid_strategy`."""


class RolloutBodySerializer(serializers.Serializer):
    config = serializers.DictField(help_text="The profile's new config (dicts merge key by key)")
    strategy = StrategyField(
        required=False, default=dict, help_text="How it goes out; missing keys take defaults"
    )


class StrategyOutSerializer(serializers.Serializer):
    canary = serializers.IntegerField()
    waves = serializers.ListField(child=serializers.IntegerField())
    wave_wait_seconds = serializers.IntegerField()
    confirm_timeout_seconds = serializers.IntegerField()
    max_failure_percent = serializers.FloatField()


class WaveSerializer(serializers.Serializer):
    index = serializers.IntegerField(source="wave.index", help_text="0 is the canary")
    percent = serializers.IntegerField(
        source="wave.percent", allow_null=True, help_text="Cumulative; null for the canary"
    )
    devices = serializers.IntegerField()
    pending = serializers.SerializerMethodField()
    applied = serializers.SerializerMethodField()
    confirmed = serializers.SerializerMethodField()
    failed = serializers.SerializerMethodField()
    rolled_back = serializers.SerializerMethodField()
    offline = serializers.IntegerField(help_text="Applied while offline: not counted")
    started_at = serializers.SerializerMethodField()
    completed_at = serializers.SerializerMethodField()

    def get_pending(self, wave: WaveProgress) -> int:
        return wave.states[DeviceState.PENDING]

    def get_applied(self, wave: WaveProgress) -> int:
        return wave.states[DeviceState.APPLIED]

    def get_confirmed(self, wave: WaveProgress) -> int:
        return wave.states[DeviceState.CONFIRMED]

    def get_failed(self, wave: WaveProgress) -> int:
        return wave.states[DeviceState.FAILED]

    def get_rolled_back(self, wave: WaveProgress) -> int:
        return wave.states[DeviceState.ROLLED_BACK]

    def get_started_at(self, wave: WaveProgress) -> str | None:
        return rfc3339(wave.wave.started_at)

    def get_completed_at(self, wave: WaveProgress) -> str | None:
        return rfc3339(wave.wave.completed_at)


class RolloutDeviceSerializer(serializers.Serializer):
    device_id = serializers.CharField()
    wave = serializers.IntegerField(help_text="Index of its wave (0: the canary)")
    state = serializers.ChoiceField(choices=DeviceState.choices)
    error = serializers.CharField(help_text="Why it failed, or what it waits for")
    offline = serializers.BooleanField()
    applied_at = serializers.SerializerMethodField()
    settled_at = serializers.SerializerMethodField()

    def get_applied_at(self, device: RolloutDevice) -> str | None:
        return rfc3339(device.applied_at)

    def get_settled_at(self, device: RolloutDevice) -> str | None:
        return rfc3339(device.settled_at)


class RolloutSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    rollout_id = serializers.IntegerField(source="pk")
    profile = serializers.CharField(source="profile_name")
    from_version = serializers.IntegerField()
    to_version = serializers.IntegerField()
    status = serializers.ChoiceField(choices=RolloutStatus.choices)
    reason = serializers.CharField(help_text="Why it ended, when it did")
    config = serializers.DictField()
    strategy = StrategyOutSerializer()
    canary = serializers.SerializerMethodField()
    waves = serializers.SerializerMethodField()
    actor = serializers.CharField()
    created_at = serializers.SerializerMethodField()
    updated_at = serializers.SerializerMethodField()
    finished_at = serializers.SerializerMethodField()

    def _progress(self, rollout: Rollout) -> Progress:
        cache = self.context.setdefault("progress", {})
        if rollout.pk not in cache:
            cache[rollout.pk] = rollout_progress(rollout)
        return cache[rollout.pk]

    @extend_schema_field(WaveSerializer)
    def get_canary(self, rollout: Rollout) -> dict[str, Any]:
        return WaveSerializer(self._progress(rollout).waves[0]).data

    @extend_schema_field(WaveSerializer(many=True))
    def get_waves(self, rollout: Rollout) -> list[dict[str, Any]]:
        return WaveSerializer(self._progress(rollout).waves[1:], many=True).data

    def get_created_at(self, rollout: Rollout) -> str | None:
        return rfc3339(rollout.created_at)

    def get_updated_at(self, rollout: Rollout) -> str | None:
        return rfc3339(rollout.updated_at)

    def get_finished_at(self, rollout: Rollout) -> str | None:
        return rfc3339(rollout.finished_at)


class RolloutSerializer(RolloutSummarySerializer):
    devices = serializers.SerializerMethodField()

    @extend_schema_field(RolloutDeviceSerializer(many=True))
    def get_devices(self, rollout: Rollout) -> list[dict[str, Any]]:
        return RolloutDeviceSerializer(rollout.devices.order_by("position"), many=True).data


class RolloutListSerializer(serializers.Serializer):
    rollouts = RolloutSummarySerializer(many=True)
    total = serializers.IntegerField()


def rollout_body(rollout: Rollout) -> dict[str, Any]:
    return RolloutSerializer(rollout).data
