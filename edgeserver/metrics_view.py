"""`GET /metrics`: the server's own metrics in the Prometheus text format."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from edgeserver import metrics
from edgeserver.api.errors import error_body


@require_GET
def metrics_page(request: HttpRequest) -> HttpResponse:
    """Anonymous unless METRICS_TOKEN is set; then `Authorization: Bearer <METRICS_TOKEN>`."""
    expected = settings.METRICS_TOKEN
    if expected:
        header = request.headers.get("Authorization", "")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            presented.strip().encode(), expected.encode()
        ):
            response = JsonResponse(
                error_body("authentication_required", "Send Authorization: Bearer <METRICS_TOKEN>"),
                status=401,
            )
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    body, content_type = metrics.exposition()
    return HttpResponse(body, content_type=content_type)
