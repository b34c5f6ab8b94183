"""OpenAPI details drf-spectacular cannot infer: how the contract spells its paths."""

from __future__ import annotations

from typing import Any


def without_trailing_slash(endpoints: list[tuple]) -> list[tuple]:
    """Document the contract's spelling (`/config/{device_id}`); a trailing slash, and a
    doubled slash before `config/`, also work."""
    return [
        (path.rstrip("/").replace("//", "/") if path != "/" else path, regex, method, callback)
        for path, regex, method, callback in endpoints
    ]


NO_NUL = "^[^\\u0000]*$"
# Any JSON value the server can store: no NUL in a string or a key, at any depth.
STORABLE_VALUE = {
    "description": "Any JSON value without NUL characters in its strings and keys (at any "
    "depth), with finite numbers and valid Unicode",
    "anyOf": [
        {"type": "string", "pattern": NO_NUL},
        {"type": ["number", "boolean", "null"]},
        {"type": "array", "items": {"$ref": "#/components/schemas/StorableValue"}},
        {
            "type": "object",
            "propertyNames": {"pattern": NO_NUL},
            "additionalProperties": {"$ref": "#/components/schemas/StorableValue"},
        },
    ],
}


def _storable(schema: dict[str, Any]) -> None:
    """What the JSON parser refuses in every body, said in the schema of one."""
    if schema.get("type") == "object" or "properties" in schema:
        schema["propertyNames"] = {"pattern": NO_NUL}
        if schema.get("additionalProperties", True) in ({}, True):
            schema["additionalProperties"] = {"$ref": "#/components/schemas/StorableValue"}
    children = list(schema.get("properties", {}).values())
    if isinstance(schema.get("items"), dict):
        children.append(schema["items"])
    for child in children:
        types = child.get("type")
        if (types == "string" or (isinstance(types, list) and "string" in types)) and not (
            "pattern" in child or "enum" in child or "format" in child
        ):
            child["pattern"] = NO_NUL
        _storable(child)
    for option in schema.get("anyOf", []):
        _storable(option)


def storable_request_bodies(result: dict[str, Any], generator: Any, request: Any, public: bool):
    """Every request body says that its strings and keys hold no NUL (the server refuses
    them: no database stores them)."""
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components["StorableValue"] = STORABLE_VALUE
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            for media in (operation.get("requestBody") or {}).get("content", {}).values():
                schema = media.get("schema", {})
                ref = schema.get("$ref", "")
                _storable(components[ref.rsplit("/", 1)[1]] if ref else schema)
    return result


def metrics_operation(result: dict[str, Any], generator: Any, request: Any, public: bool):
    """`GET /metrics` (a plain Django view, which drf-spectacular does not see)."""
    from edgeserver.api.errorkinds import kind

    unauthorized = kind("authentication_required")
    result.setdefault("paths", {})["/metrics"] = {
        "get": {
            "operationId": "server_metrics",
            "description": "The server's own metrics in the Prometheus text format: HTTP "
            "requests, config writes, probes, reloads, Kubernetes syncs and the fleet by "
            "status, summed over every worker and the device monitor. Anonymous unless "
            "METRICS_TOKEN is set; then `Authorization: Bearer <METRICS_TOKEN>`.",
            "tags": ["server"],
            "security": [{"metricsToken": []}, {}],
            "responses": {
                "200": {
                    "description": "The Prometheus text exposition format 0.0.4",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
                "401": {
                    "description": f"`{unauthorized.error}`: METRICS_TOKEN is set and was not sent",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["error"],
                                "properties": {
                                    "error": {"type": "string", "enum": [unauthorized.error]},
                                    "message": {"type": "string"},
                                },
                            }
                        }
                    },
                },
            },
        }
    }
    schemes = result.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes["metricsToken"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "METRICS_TOKEN, when it is set",
    }
    return result
