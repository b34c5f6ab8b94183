"""A rollout's strategy, checked, and the plan it makes of a profile's devices: a
deterministic order, the canary, then cumulative percentages of the rest."""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from rollouts.exceptions import InvalidStrategy

DEFAULTS: dict[str, Any] = {
    "canary": 1,
    "waves": [10, 50, 100],
    "wave_wait_seconds": 60,
    "confirm_timeout_seconds": 120,
    "max_failure_percent": 10,
}
MAX_WAVES = 20
# (low, high) of each integer; max_failure_percent may be a fraction.
RANGES = {
    "canary": (0, 100_000),
    "wave_wait_seconds": (0, 86_400),
    "confirm_timeout_seconds": (1, 86_400),
    "max_failure_percent": (0, 100),
}


@dataclass(frozen=True)
class Strategy:
    canary: int
    waves: tuple[int, ...]
    wave_wait_seconds: int
    confirm_timeout_seconds: int
    max_failure_percent: float

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "waves": list(self.waves)}


def _number(key: str, value: Any, *, fraction: bool = False) -> Any:
    low, high = RANGES[key]
    kinds = (int, float) if fraction else (int,)
    if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
        kind = "a number" if fraction else "an integer"
        raise InvalidStrategy(f"strategy.{key} must be {kind} {low}-{high}")
    return value


def _waves(value: Any) -> tuple[int, ...]:
    message = (
        f"strategy.waves must be a list of 1-{MAX_WAVES} ascending percentages (integers "
        "1-100) ending at 100, e.g. [10, 50, 100]"
    )
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_WAVES:
        raise InvalidStrategy(message)
    if any(isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 100 for v in value):
        raise InvalidStrategy(message)
    if any(b <= a for a, b in itertools.pairwise(value)) or value[-1] != 100:
        raise InvalidStrategy(message)
    return tuple(value)


def strategy_of(data: Any) -> Strategy:
    """The strategy a request asked for, its missing keys from DEFAULTS; raises
    InvalidStrategy naming the first bad value."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise InvalidStrategy("strategy must be an object")
    unknown = sorted(set(data) - set(DEFAULTS))
    if unknown:
        raise InvalidStrategy(
            f"strategy.{unknown[0]} is not a strategy key (known: {', '.join(DEFAULTS)})"
        )
    values = {**DEFAULTS, **data}
    return Strategy(
        canary=_number("canary", values["canary"]),
        waves=_waves(values["waves"]),
        wave_wait_seconds=_number("wave_wait_seconds", values["wave_wait_seconds"]),
        confirm_timeout_seconds=_number(
            "confirm_timeout_seconds", values["confirm_timeout_seconds"]
        ),
        max_failure_percent=_number(
            "max_failure_percent", values["max_failure_percent"], fraction=True
        ),
    )


def rollout_order(device_ids: Sequence[str]) -> list[str]:
    """The order devices get a new version in: by a hash of the id, so the canary and the
    first waves are spread over the fleet (not the alphabetically first devices of one
    site), and the same for every rollout of the same set."""
    return sorted(device_ids, key=lambda i: (hashlib.sha256(i.encode()).hexdigest(), i))


def wave_plan(device_ids: Sequence[str], strategy: Strategy) -> list[list[str]]:
    """[canary, wave 1, ...]: the canary is the first `canary` devices of the order; each
    wave's percentage is cumulative, of the devices after the canary (rounded up, so a
    wave of a small fleet holds at least one device)."""
    ordered = rollout_order(device_ids)
    canary, rest = ordered[: strategy.canary], ordered[strategy.canary :]
    plan, done = [canary], 0
    for percent in strategy.waves:
        upto = math.ceil(len(rest) * percent / 100)
        plan.append(rest[done:upto])
        done = upto
    return plan
