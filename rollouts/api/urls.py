"""Routes of the rollouts. A trailing slash is accepted on every route."""

from django.urls import re_path

from rollouts.api import views

ROLLOUT = r"(?P<rollout_id>[^/]+)"

urlpatterns = [
    re_path(
        r"^profiles/(?P<name>[^/]+)/rollouts/?$",
        views.RolloutStartView.as_view(),
        name="rollout-start",
    ),
    re_path(r"^rollouts/?$", views.RolloutListView.as_view(), name="rollout-list"),
    re_path(rf"^rollouts/{ROLLOUT}/?$", views.RolloutDetailView.as_view(), name="rollout-detail"),
    re_path(
        rf"^rollouts/{ROLLOUT}/pause/?$", views.RolloutPauseView.as_view(), name="rollout-pause"
    ),
    re_path(
        rf"^rollouts/{ROLLOUT}/resume/?$", views.RolloutResumeView.as_view(), name="rollout-resume"
    ),
    re_path(
        rf"^rollouts/{ROLLOUT}/abort/?$", views.RolloutAbortView.as_view(), name="rollout-abort"
    ),
]
