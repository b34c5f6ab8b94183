"""A hand-written JSON Schema of the Prometheus Operator ScrapeConfig, as far as the
server generates and ships one.

The operator's CRD schemas are not available offline (kubernetes-validate knows only
built-in kinds), so this lists the fields the objects may use and their types. It is
deliberately narrower than the current CRD: only fields that Prometheus Operator 0.66
already accepts (ScrapeConfig v1alpha1 appeared in 0.65; `authorization` on httpSDConfigs
in 0.66), so a typo, or a field an older operator would refuse, fails the tests.
"""

from __future__ import annotations

from typing import Any

import jsonschema

LABEL_NAME = r"^[a-zA-Z_][a-zA-Z0-9_]*$"
# monitoring.coreos.com/v1 Duration.
DURATION = {
    "type": "string",
    "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?"
    r"(([0-9]+)s)?(([0-9]+)ms)?)$",
}
SECRET_KEY_SELECTOR = {
    "type": "object",
    "required": ["name", "key"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "key": {"type": "string", "minLength": 1},
        "optional": {"type": "boolean"},
    },
    "additionalProperties": False,
}
SAFE_AUTHORIZATION = {
    "type": "object",
    "properties": {"type": {"type": "string"}, "credentials": SECRET_KEY_SELECTOR},
    "additionalProperties": False,
}
RELABEL_ACTIONS = [
    "replace", "keep", "drop", "hashmod", "labelmap", "labeldrop", "labelkeep",
    "lowercase", "uppercase", "keepequal", "dropequal",
]  # fmt: skip
RELABEL_CONFIG = {
    "type": "object",
    "properties": {
        "sourceLabels": {"type": "array", "items": {"type": "string", "pattern": LABEL_NAME}},
        "separator": {"type": "string"},
        "targetLabel": {"type": "string"},
        "regex": {"type": "string"},
        "modulus": {"type": "integer", "minimum": 0},
        "replacement": {"type": "string"},
        "action": {"enum": RELABEL_ACTIONS + [a.capitalize() for a in RELABEL_ACTIONS]},
    },
    "additionalProperties": False,
    # The default action, replace, writes into targetLabel: without one it does nothing
    # and the operator refuses the object.
    "if": {"not": {"required": ["action"]}},
    "then": {"required": ["targetLabel"]},
}
HTTP_SD_CONFIG = {
    "type": "object",
    "required": ["url"],
    "properties": {
        "url": {"type": "string", "pattern": r"^http(s)?://.+$"},
        "refreshInterval": DURATION,
        "basicAuth": {"type": "object"},
        "authorization": SAFE_AUTHORIZATION,
    },
    "additionalProperties": False,
}
NAME = {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63}
SCRAPECONFIG = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1alpha1"},
        "kind": {"const": "ScrapeConfig"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": NAME,
                "namespace": NAME,
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
            },
            "additionalProperties": False,
        },
        "spec": {
            "type": "object",
            "properties": {
                "staticConfigs": {"type": "array", "minItems": 1},
                "fileSDConfigs": {"type": "array", "minItems": 1},
                "httpSDConfigs": {"type": "array", "items": HTTP_SD_CONFIG, "minItems": 1},
                "relabelings": {"type": "array", "items": RELABEL_CONFIG, "minItems": 1},
                "metricsPath": {"type": "string", "minLength": 1},
                "honorTimestamps": {"type": "boolean"},
                "honorLabels": {"type": "boolean"},
            },
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
}


def validate_scrapeconfig(obj: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError unless `obj` is a ScrapeConfig of the fields above."""
    jsonschema.validate(obj, SCRAPECONFIG)
