"""The device form: validates exactly as `PUT /config/{id}` does."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from rest_framework.exceptions import ParseError

from devices.api.serializers import DeviceConfigSerializer
from devices.labels import InvalidLabel, validate_labels
from devices.models import Device
from devices.validation import device_id_problem
from edgeserver.api.parsers import check_storable


class PrettyJSONEncoder(json.JSONEncoder):
    """Shows JSON in the edit form indented, one key per line."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.update(indent=2, sort_keys=True)
        super().__init__(*args, **kwargs)


class DeviceForm(forms.ModelForm):
    """Validates exactly as `PUT /config/{id}` does, so the admin cannot store what the API
    would refuse."""

    enabled_metrics = forms.JSONField(
        required=False,
        encoder=PrettyJSONEncoder,
        help_text='JSON list of metric names, e.g. ["gpu_power"]; empty = all',
    )
    extra_config = forms.JSONField(
        required=False,
        encoder=PrettyJSONEncoder,
        initial=dict,
        help_text='JSON object of the other config keys, e.g. {"shelly": {"enabled": true}}',
    )
    labels = forms.JSONField(
        required=False,
        encoder=PrettyJSONEncoder,
        initial=dict,
        help_text='JSON object of label keys and values, e.g. {"site": "lab-3", "rack": "r2"}: '
        "Kubernetes label syntax; selectors pick devices by them, and they reach the scrape "
        "targets and the device's Service. Not served config: changing them reloads nothing.",
    )
    version = forms.IntegerField(widget=forms.HiddenInput, required=False)

    class Meta:
        model = Device
        fields = ["device_id", "device_type", "ip_address", "port", "reload_port"]
        help_texts = {
            "ip_address": "IPv4 or IPv6 literal. Empty keeps the stored address, as in the API.",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["version"].initial = self.instance.version
            self.fields["extra_config"].initial = self.instance.extra_config
            self.fields["enabled_metrics"].initial = self.instance.enabled_metrics
            self.fields["labels"].initial = self.instance.labels
        self.config_data: dict[str, Any] = {}

    def clean_device_id(self) -> str:
        device_id = self.cleaned_data["device_id"]
        problem = device_id_problem(device_id)
        if problem:
            raise forms.ValidationError(problem)
        return device_id

    def clean_labels(self) -> dict[str, str]:
        try:
            return validate_labels(self.cleaned_data.get("labels") or {})
        except InvalidLabel as exc:
            raise forms.ValidationError(str(exc)) from exc

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        extra = cleaned.get("extra_config") or {}
        if not isinstance(extra, dict):
            self.add_error("extra_config", "Must be a JSON object")
            return cleaned
        body = {
            **extra,
            "device_type": cleaned.get("device_type"),
            "ip_address": cleaned.get("ip_address") or "",
            "port": cleaned.get("port"),
            "reload_port": cleaned.get("reload_port"),
            "enabled_metrics": cleaned.get("enabled_metrics"),
        }
        version = cleaned.get("version")
        if self.instance.pk and version and version != self.instance.version:
            raise forms.ValidationError(
                f"{self.instance.pk} was changed since this page was opened (now version "
                f"{self.instance.version}); reload the page to see the current config."
            )
        try:
            check_storable(body)
        except ParseError as exc:
            self.add_error(None, str(exc.detail))
            return cleaned
        serializer = DeviceConfigSerializer(
            data=body, context={"device_id": cleaned.get("device_id") or self.instance.pk}
        )
        if not serializer.is_valid():
            for field, problems in serializer.errors.items():
                target = field if field in self.fields else "extra_config"
                for problem in problems if isinstance(problems, list) else [problems]:
                    self.add_error(target, str(problem))
        else:
            self.config_data = serializer.validated_data
        return cleaned
