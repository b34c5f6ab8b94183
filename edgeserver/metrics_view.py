"""`GET /metrics`: the server's own metrics in the Prometheus text format.

A plain Django view (Prometheus asks with its own Accept header, which DRF's content
negotiation has no business judging); the OpenAPI schema documents it
(edgeserver.api.schema.metrics_operation).
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from edgeserver import metrics
from edgeserver.api.errors import error_response

METHODS = ("GET", "HEAD")


def metrics_page(request: HttpRequest) -> HttpResponse:
    """Anonymous unless METRICS_TOKEN is set; then `Authorization: Bearer <METRICS_TOKEN>`."""
    if request.method not in METHODS:
        response = error_response(
            405, "method_not_allowed", f'Method "{request.method}" not allowed.'
        )
        response["Allow"] = ", ".join(METHODS)
        return response
    expected = settings.METRICS_TOKEN
    if expected:
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            presented.strip().encode(), expected.encode()
        ):
            response = error_response(
                401, "authentication_required", "Send Authorization: Bearer <METRICS_TOKEN>"
            )
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    body, content_type = metrics.exposition()
    return HttpResponse(body, content_type=content_type)
