"""What the rollouts domain refuses, as exceptions that know nothing of HTTP
(rollouts/api/errors.py answers them)."""

from __future__ import annotations


class RolloutError(Exception):
    """A refused operation on a rollout; `str(error)` is meant for operators."""

    def __init__(self, message: str, *, rollout_id: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.rollout_id = rollout_id


class RolloutNotFound(RolloutError):
    def __init__(self, rollout_id: object) -> None:
        super().__init__(f"No rollout has id {rollout_id}")


class InvalidStrategy(RolloutError):
    """A strategy value out of range or of the wrong type (the message names it)."""


class TransitionRefused(RolloutError):
    """The rollout's status does not allow this (resume a running one, abort an ended one)."""
