"""OpenAPI details drf-spectacular cannot infer: our authenticators and path spelling."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "edgeserver.api.auth.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An operator token (API_TOKENS, create_api_token, admin); on the "
            "device routes also a device or enrollment token.",
        }


class StaffSessionScheme(OpenApiAuthenticationExtension):
    target_class = "edgeserver.api.auth.StaffSessionAuthentication"
    name = "staffSession"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {"type": "apiKey", "in": "cookie", "name": "sessionid"}


def without_trailing_slash(endpoints: list[tuple]) -> list[tuple]:
    """Document the contract's spelling (`/config/{device_id}`); a trailing slash also works.

    `/d/{token}/config/{device_id}` is the same operation as `/config/{device_id}` with
    the credential in the path (for exporters that cannot send headers); it is described
    there rather than listed twice.
    """
    return [
        (path.rstrip("/") if path != "/" else path, regex, method, callback)
        for path, regex, method, callback in endpoints
        if not path.startswith("/d/")
    ]


def device_id_parameters(result: dict[str, Any], generator: Any, request: Any, public: bool):
    """Every `{device_id}` path parameter follows the one device id rule."""
    from devices.validation import DEVICE_ID_PATTERN

    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "path" and parameter.get("name") == "device_id":
                    parameter["schema"] = {
                        "type": "string",
                        "pattern": f"^{DEVICE_ID_PATTERN.pattern}$",
                        "maxLength": 253,
                    }
                    parameter["description"] = (
                        "The device's hostname as the exporter reports it, e.g. edge-01"
                    )
    return result
