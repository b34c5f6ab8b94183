"""Top-level routes: the JSON API at the root (the contract's paths), admin and API docs."""

from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from edgeserver.api.views import ServerHealthView, ServerReadyView
from edgeserver.metrics_view import metrics_page

admin.site.site_header = "Edge Metrics Server"
admin.site.site_title = "Edge Metrics Server"
admin.site.index_title = "Fleet administration"
# The server has no site of its own to view (its root is the JSON API): the API's docs.
admin.site.site_url = "/api/docs"
# The breadcrumbs and the home page lead everywhere; the sidebar would take 275 px of a
# 1280 px screen from the device list.
admin.site.enable_nav_sidebar = False

# The device API comes first: GET /config/{id} is the fleet's hottest call, and Django
# tries the routes in order.
urlpatterns = [
    path("", include("devices.api.urls")),
    re_path(r"^health/?$", ServerHealthView.as_view(), name="health"),
    re_path(r"^health/ready/?$", ServerReadyView.as_view(), name="health-ready"),
    re_path(r"^metrics/?$", metrics_page, name="metrics"),
    # API tokens moved from the devices app to the users app: old bookmarks still work.
    re_path(
        r"^admin/devices/apitoken/(?P<rest>.*)$",
        RedirectView.as_view(url="/admin/users/apitoken/%(rest)s", query_string=True),
    ),
    path("admin/", admin.site.urls),
    re_path(r"^api/schema/?$", SpectacularAPIView.as_view(), name="schema"),
    re_path(r"^api/docs/?$", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("", include("k8sbridge.api.urls")),
    path("", include("rollouts.api.urls")),
]

handler400 = "edgeserver.api.errors.bad_request"
handler403 = "edgeserver.api.errors.permission_denied"
handler404 = "edgeserver.api.errors.not_found"
handler500 = "edgeserver.api.errors.server_error"
