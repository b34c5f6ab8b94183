"""Routes of the Kubernetes bridge. A trailing slash is accepted on every route."""

from django.urls import re_path

from k8sbridge.api import views

DEVICE = r"(?P<device_id>[^/]+)"

urlpatterns = [
    re_path(r"^kubernetes/sync/?$", views.SyncView.as_view(), name="k8s-sync"),
    re_path(
        rf"^kubernetes/sync/{DEVICE}/?$", views.DeviceSyncView.as_view(), name="k8s-sync-device"
    ),
    re_path(r"^kubernetes/status/?$", views.StatusView.as_view(), name="k8s-status"),
    re_path(r"^kubernetes/health/?$", views.HealthView.as_view(), name="k8s-health"),
    re_path(r"^kubernetes/manifests/?$", views.ManifestsView.as_view(), name="k8s-manifests"),
    re_path(
        rf"^kubernetes/resources/{DEVICE}/?$", views.ResourcesView.as_view(), name="k8s-resources"
    ),
    re_path(r"^kubernetes/cleanup/?$", views.CleanupView.as_view(), name="k8s-cleanup"),
]
