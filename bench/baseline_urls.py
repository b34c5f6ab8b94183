"""The benchmarks' baseline: a bare Django view returning a constant JSON body, served by
the same gunicorn settings as the real server."""

from django.http import JsonResponse
from django.urls import re_path

BODY = {"device_type": "jetson_orin", "port": 9102, "reload_port": 9101, "metrics": {"gpu": True}}


def constant(request, device_id):
    return JsonResponse(BODY)


def health(request):
    return JsonResponse({"status": "healthy"})


urlpatterns = [
    re_path(r"^config/(?P<device_id>[^/]+)$", constant),
    re_path(r"^health$", health),  # what the launcher waits for
]
