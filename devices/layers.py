"""The layers of a served config: what the device's writes built at the bottom, then the
matching profiles by ascending priority, then the keys an operator set for the device.

Pure functions over config documents (the body of `GET /config/{id}`). Dicts merge key by
key, anything else replaces; a key is named by its path (`("metrics", "gpu_power")`). With
no profiles the served config is the written one, exactly: nothing here changes it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Path = tuple[str, ...]
DEVICE = "device"
OPERATOR = "operator"
_MISSING = object()


def leaves(document: Mapping[str, Any], prefix: Path = ()) -> Iterator[tuple[Path, Any]]:
    """Every key path of `document` whose value is not a non-empty dict, with its value."""
    for key, value in document.items():
        path = (*prefix, key)
        if isinstance(value, Mapping) and value:
            yield from leaves(value, path)
        else:
            yield path, value


def lookup(document: Mapping[str, Any], path: Sequence[str]) -> Any:
    """The value at `path`, or `_MISSING`."""
    node: Any = document
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return _MISSING
        node = node[key]
    return node


def found(value: Any) -> bool:
    return value is not _MISSING


def assign(document: dict[str, Any], path: Sequence[str], value: Any) -> None:
    """Set `path` to `value` (`_MISSING` removes it), making dicts on the way."""
    node = document
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            if value is _MISSING:
                return
            child = node[key] = {}
        node = child
    if value is _MISSING:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = copy.deepcopy(value)


def merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """`overlay` over `base`: dicts merge key by key, any other value replaces."""
    merged = copy.deepcopy(dict(base))
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


@dataclass(frozen=True)
class ProfileLayer:
    """One profile as it applies to one device: the version the device gets."""

    name: str
    priority: int
    version: int
    config: Mapping[str, Any]


@dataclass(frozen=True)
class Layered:
    """A served config and, for each of its key paths, the layer that set it."""

    document: dict[str, Any]
    origins: dict[Path, str] = field(default_factory=dict)

    def explain(self) -> dict[str, str]:
        """`{"metrics.gpu_power": "profile:gpu@3", ...}` (dots join a path)."""
        return {".".join(path): origin for path, origin in sorted(self.origins.items())}


def _covers(paths: Sequence[Path], path: Path) -> bool:
    """Whether a path in `paths` is `path`, one of its ancestors or one of its children."""
    return any(path[: len(p)] == p or p[: len(path)] == path for p in paths)


def _set(document: dict[str, Any], origins: dict[Path, str], path: Path, value: Any, by: str):
    """Assign `value` at `path` and say that `by` set it (and nothing under it is older)."""
    assign(document, path, value)
    for old in [p for p in origins if p[: len(path)] == path or path[: len(p)] == p]:
        del origins[old]
    for leaf, _ in leaves({"": value}):
        origins[(*path, *leaf[1:])] = by


def layer(
    base: Mapping[str, Any],
    profiles: Sequence[ProfileLayer],
    operator_keys: Sequence[Path] = (),
) -> Layered:
    """The served config of a device: `base`, then `profiles` (lowest priority first), then
    the values `base` holds at `operator_keys` on top of every profile."""
    document = copy.deepcopy(dict(base))
    origins = {path: DEVICE for path, _ in leaves(document)}
    for profile in sorted(profiles, key=lambda p: (p.priority, p.name)):
        for path, value in leaves(profile.config):
            _set(document, origins, path, value, f"profile:{profile.name}@{profile.version}")
    for path in operator_keys:
        value = lookup(base, path)
        if found(value):
            _set(document, origins, tuple(path), value, OPERATOR)
    return Layered(document, origins)


def profile_paths(profiles: Sequence[ProfileLayer]) -> list[Path]:
    return [path for profile in profiles for path, _ in leaves(profile.config)]


def device_base(
    reported: Mapping[str, Any],
    *,
    previous_base: Mapping[str, Any],
    served: Mapping[str, Any],
    profiles: Sequence[ProfileLayer],
    operator_keys: Sequence[Path],
) -> dict[str, Any]:
    """What a device's own PUT leaves as its base config: what it reported, except where
    a profile sets the key and the device only echoed the served value (or left it out):
    there the base keeps what it held, so an echo never pins a profile's value."""
    base = copy.deepcopy(dict(reported))
    pinned = [tuple(p) for p in operator_keys]
    for path in profile_paths(profiles):
        if _covers(pinned, path):
            continue
        value = lookup(reported, path)
        if not found(value) or value == lookup(served, path):
            assign(base, path, lookup(previous_base, path))
            _prune(base, previous_base, path)
    return base


def _prune(base: dict[str, Any], previous_base: Mapping[str, Any], path: Path) -> None:
    """Drop the dicts a removal left empty that the previous base did not have."""
    for end in range(len(path) - 1, 0, -1):
        parent = path[:end]
        if lookup(base, parent) == {} and not found(lookup(previous_base, parent)):
            assign(base, parent, _MISSING)


def operator_keys_after_device_write(
    reported: Mapping[str, Any], *, served: Mapping[str, Any], operator_keys: Sequence[Path]
) -> list[Path]:
    """A device's own change of a key an operator set wins, as today (last writer wins):
    the key is no longer the operator's. An echo of the served value keeps it theirs."""
    kept = []
    for path in operator_keys:
        value = lookup(reported, path)
        if value == lookup(served, path):
            kept.append(tuple(path))
    return kept


def operator_keys_after_operator_write(
    written: Mapping[str, Any],
    *,
    served: Mapping[str, Any],
    operator_keys: Sequence[Path],
    explicit: Sequence[Path] | None = None,
) -> list[Path]:
    """The keys an operator's write names (`explicit`; None: every key of `written`) with
    another value than was served become theirs; an echo of the served value decides
    nothing. Keys the write removed stop being theirs (a profile's value shows again)."""
    keys = {tuple(p) for p in operator_keys if found(lookup(written, p))}
    named = [path for path, _ in leaves(written)] if explicit is None else explicit
    for path in map(tuple, named):
        value = lookup(written, path)
        if found(value) and value != lookup(served, path) and not _covers(list(keys), path):
            keys.add(path)
    return sorted(keys)
