"""The rollout routes (operators): start one for a profile, list and read them, pause,
resume and abort. Each view calls one service or selector and answers with the rollout's
serializer; domain errors leave through the one error table."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from devices.api.base import DeviceApiView
from devices.api.views import BODY, OPERATOR, _errors
from edgeserver.api.errors import ApiError
from rollouts import selectors, services
from rollouts.api.errors import ROLLOUT_NOT_FOUND
from rollouts.api.serializers import (
    RolloutBodySerializer,
    RolloutListSerializer,
    RolloutSerializer,
)
from rollouts.choices import RolloutStatus
from rollouts.exceptions import RolloutNotFound

ROLLOUT = (*OPERATOR, ROLLOUT_NOT_FOUND)
START_KINDS = ("Profile not found", "invalid_profile", "invalid_strategy", "rollout_in_progress")
# The newest rollouts a list answers with (`total` counts them all).
LIST_LIMIT = 200
MAX_ID = 2**63 - 1
ROLLOUT_ID = OpenApiParameter(
    "rollout_id", {"type": "integer", "minimum": 1}, OpenApiParameter.PATH, description="Its id"
)


def _rollout_id(raw: str) -> int:
    if not raw.isdigit() or not 0 < int(raw) <= MAX_ID:
        raise RolloutNotFound(raw)
    return int(raw)


class RolloutStartView(DeviceApiView):
    @extend_schema(
        operation_id="rollout_start",
        request={"application/json": RolloutBodySerializer},
        responses={
            201: RolloutSerializer,
            **_errors(*OPERATOR, *BODY, *START_KINDS),
        },
        tags=["rollouts"],
    )
    def post(self, request: Request, name: str) -> Response:
        """Roll a new config of a profile out in stages: the canary first, then each wave
        once the previous one is confirmed and `wave_wait_seconds` passed; devices not yet
        reached keep the current version. Too many failures roll every reached device back."""
        body = RolloutBodySerializer(data=self.body())
        body.is_valid(raise_exception=True)
        rollout = services.rollout_start(
            profile_name=name,
            config=body.validated_data["config"],
            strategy=body.validated_data.get("strategy"),
            actor=self.actor(),
        )
        return Response(RolloutSerializer(rollout).data, status=201)


STATUS_FILTER = OpenApiParameter("status", str, enum=list(RolloutStatus.values))
PROFILE_FILTER = OpenApiParameter(
    "profile", {"type": "string", "pattern": "^[^\\u0000]*$"}, description="Profile name"
)


class RolloutListView(DeviceApiView):
    @extend_schema(
        operation_id="rollouts_list",
        parameters=[STATUS_FILTER, PROFILE_FILTER],
        responses={200: RolloutListSerializer, **_errors(*OPERATOR, "invalid_filter")},
        tags=["rollouts"],
    )
    def get(self, request: Request) -> Response:
        """Rollouts, newest first (at most 200; `total` counts every match)."""
        status = request.query_params.get("status")
        if status is not None and status not in RolloutStatus.values:
            raise ApiError(
                400, "invalid_filter", f"status must be one of {', '.join(RolloutStatus.values)}"
            )
        rows = selectors.rollout_list(status=status, profile=request.query_params.get("profile"))
        body = {"rollouts": list(rows[:LIST_LIMIT]), "total": rows.count()}
        return Response(RolloutListSerializer(body).data)


class RolloutDetailView(DeviceApiView):
    @extend_schema(
        operation_id="rollout_get",
        parameters=[ROLLOUT_ID],
        responses={200: RolloutSerializer, **_errors(*ROLLOUT)},
        tags=["rollouts"],
    )
    def get(self, request: Request, rollout_id: str) -> Response:
        """A rollout with its waves and each device's state."""
        rollout = selectors.rollout_get(rollout_id=_rollout_id(rollout_id))
        return Response(RolloutSerializer(rollout).data)


def _action_view(action: str, summary: str):
    service = {
        "pause": services.rollout_pause,
        "resume": services.rollout_resume,
        "abort": services.rollout_abort,
    }[action]

    class RolloutActionView(DeviceApiView):
        @extend_schema(
            operation_id=f"rollout_{action}",
            parameters=[ROLLOUT_ID],
            request=None,
            responses={200: RolloutSerializer, **_errors(*ROLLOUT, "invalid_rollout_transition")},
            tags=["rollouts"],
            description=summary,
        )
        def post(self, request: Request, rollout_id: str) -> Response:
            rollout = service(rollout_id=_rollout_id(rollout_id), actor=self.actor())
            return Response(RolloutSerializer(rollout).data)

    RolloutActionView.__name__ = f"Rollout{action.capitalize()}View"
    return RolloutActionView


RolloutPauseView = _action_view(
    "pause", "Pause a running rollout: no new wave starts; devices reached are still confirmed."
)
RolloutResumeView = _action_view("resume", "Resume a paused rollout where it was.")
RolloutAbortView = _action_view(
    "abort",
    "Abort a running or paused rollout: every device that got the new version goes back to "
    "the previous one (a revision and a reload each); status `aborted`.",
)
