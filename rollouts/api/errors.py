"""How the rollouts domain's exceptions are answered, and the error kinds its routes
declare (the profile's own kinds are the devices app's)."""

from __future__ import annotations

from edgeserver.api.errorkinds import ErrorKind, declare
from edgeserver.api.errors import ApiError
from rollouts import exceptions as e

ROLLOUT_NOT_FOUND = "Rollout not found"

declare(
    ErrorKind(
        "invalid_strategy",
        400,
        "a rollout's strategy is not an object of known keys in range: canary 0-100000, "
        "waves ascending percentages ending at 100, wave_wait_seconds 0-86400, "
        "confirm_timeout_seconds 1-86400, max_failure_percent 0-100",
    ),
    ErrorKind(ROLLOUT_NOT_FOUND, 404, "no rollout has this id"),
    ErrorKind(
        "invalid_rollout_transition",
        409,
        "the rollout's status does not allow it: pause a running rollout, resume a paused "
        "one, abort one that is running or paused",
    ),
)


def _answer(status: int, error: str):
    def mapper(exc: e.RolloutError) -> ApiError:
        extra = {} if exc.rollout_id is None else {"rollout_id": exc.rollout_id}
        return ApiError(status, error, exc.message, **extra)

    return mapper


ERRORS = {
    e.RolloutNotFound: _answer(404, ROLLOUT_NOT_FOUND),
    e.InvalidStrategy: _answer(400, "invalid_strategy"),
    e.TransitionRefused: _answer(409, "invalid_rollout_transition"),
}
