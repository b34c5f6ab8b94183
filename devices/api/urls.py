"""Routes of the device API. A trailing slash is accepted on every route."""

from django.urls import re_path

from devices.api import fleet, labels, profiles, prometheus, views
from devices.api.hotpath import CONFIG_ROUTE

# A path segment; on the config route any characters (a slash, a newline) reach the id
# check (400 invalid_device_id, not 404).
DEVICE = r"(?P<device_id>[^/]+)"
PROFILE = r"(?P<name>[^/]+)"

# history and rollback before the config route, whose id pattern would take them in.
urlpatterns = [
    re_path(
        rf"^config/{DEVICE}/history/?$", views.ConfigHistoryView.as_view(), name="config-history"
    ),
    re_path(
        rf"^config/{DEVICE}/rollback/?$", views.ConfigRollbackView.as_view(), name="config-rollback"
    ),
    # A doubled slash (`CONFIG_SERVER_URL` ending in `/`) reaches the same route.
    re_path(
        r"^(?:/)?config/(?P<device_id>(?s:.+?))/?$",
        views.ConfigDetailView.as_view(),
        name=CONFIG_ROUTE,
    ),
    re_path(r"^config/?$", fleet.ConfigListView.as_view(), name="config-list"),
    re_path(
        r"^d/(?P<path_token>[^/]+)//?config/(?P<device_id>(?s:.+?))/?$",
        views.DevicePathConfigView.as_view(),
        name="config-detail-token",
    ),
    re_path(r"^devices/?$", fleet.DeviceListView.as_view(), name="device-list"),
    re_path(
        rf"^devices/{DEVICE}/status/?$", views.DeviceStatusView.as_view(), name="device-status"
    ),
    re_path(r"^devices/reload/?$", views.DevicesReloadView.as_view(), name="devices-reload"),
    re_path(
        rf"^devices/{DEVICE}/reload/?$", views.DeviceReloadView.as_view(), name="device-reload"
    ),
    re_path(
        rf"^devices/{DEVICE}/local-config/?$",
        views.DeviceLocalConfigView.as_view(),
        name="device-local-config",
    ),
    re_path(rf"^devices/{DEVICE}/ip/?$", views.DeviceAddressView.as_view(), name="device-ip"),
    re_path(
        rf"^devices/{DEVICE}/labels/?$", labels.DeviceLabelsView.as_view(), name="device-labels"
    ),
    re_path(rf"^devices/{DEVICE}/?$", views.DeviceDetailView.as_view(), name="device-detail"),
    re_path(r"^metrics/summary/?$", fleet.SummaryView.as_view(), name="metrics-summary"),
    re_path(
        r"^metrics/catalogue/?$", profiles.MetricCatalogueView.as_view(), name="metrics-catalogue"
    ),
    re_path(r"^profiles/?$", profiles.ProfileListView.as_view(), name="profile-list"),
    re_path(
        rf"^profiles/{PROFILE}/history/?$",
        profiles.ProfileHistoryView.as_view(),
        name="profile-history",
    ),
    re_path(
        rf"^profiles/{PROFILE}/?$", profiles.ProfileDetailView.as_view(), name="profile-detail"
    ),
    re_path(
        r"^prometheus/targets/?$",
        prometheus.PrometheusTargetsView.as_view(),
        name="prometheus-targets",
    ),
]
