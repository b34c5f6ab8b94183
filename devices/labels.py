"""Device labels and label selectors, in Kubernetes' syntax.

Labels are an operator's `{key: value}` strings on a device (`site=lab-3`); a selector
(`site=lab-3,device_type=jetson_orin`, `rack!=r2`, `tier in (a,b)`, `tier notin (c)`,
`gpu`, `!gpu`) picks devices by them, and by two attributes every device has:
`device_type` and `status`. Parsing and matching are pure, so the API, profiles and
rollouts all select the same way.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

# What a selector can ask besides the labels: no label may take these keys.
ATTRIBUTE_KEYS = ("device_type", "status")
RESERVED_KEYS = frozenset({*ATTRIBUTE_KEYS, "device_id"})
MAX_LABELS = 64
_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_PROMETHEUS_INVALID = re.compile(r"[^A-Za-z0-9_]")
T = TypeVar("T")


class InvalidLabel(ValueError):
    """A label key or value outside Kubernetes' syntax; the message names it."""


class InvalidSelector(ValueError):
    """A selector that does not parse; the message says where."""


def key_problem(key: object) -> str | None:
    """Why `key` is not a label key (`[prefix/]name`), or None when it is one."""
    if not isinstance(key, str):
        return "a label key must be a string"
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or len(prefix) > 253 or not _PREFIX.match(prefix)):
        return f"label key {key!r}: the prefix must be a DNS subdomain (lower-case, <= 253)"
    if not name or len(name) > 63 or not _NAME.match(name):
        return (
            f"label key {key!r}: the name must be 1-63 letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit"
        )
    return None


def value_problem(key: str, value: object) -> str | None:
    """Why `value` is not a label value (empty, or a name of at most 63), or None."""
    if not isinstance(value, str):
        return f"label {key!r}: the value must be a string"
    if value and (len(value) > 63 or not _NAME.match(value)):
        return (
            f"label {key!r}: the value {value!r} must be empty or 1-63 letters, digits, "
            "'-', '_' or '.', starting and ending with a letter or digit"
        )
    return None


def validate_labels(labels: object) -> dict[str, str]:
    """`labels` as a device's labels, or InvalidLabel naming the first bad key or value."""
    if not isinstance(labels, Mapping):
        raise InvalidLabel("labels must be an object of string keys and values")
    if len(labels) > MAX_LABELS:
        raise InvalidLabel(f"at most {MAX_LABELS} labels per device")
    for key, value in labels.items():
        problem = key_problem(key) or value_problem(key, value)
        if problem is None and key in RESERVED_KEYS:
            problem = f"label key {key!r} is reserved: selectors read it from the device itself"
        if problem:
            raise InvalidLabel(problem)
    return dict(sorted(labels.items()))


def device_attributes(labels: Mapping[str, str], device_type: str, status: str) -> dict[str, str]:
    """What a selector matches against: the device's labels and its two attributes."""
    return {**labels, "device_type": device_type, "status": status}


def prometheus_label_name(key: str) -> str:
    """A label key as a Prometheus label name (`[a-zA-Z_][a-zA-Z0-9_]*`, no `__` prefix)."""
    name = _PROMETHEUS_INVALID.sub("_", key)
    if name[0].isdigit():
        name = "_" + name
    return name.lstrip("_") if name.startswith("__") else name


@dataclass(frozen=True)
class Requirement:
    """One comma-separated term of a selector."""

    key: str
    operator: str  # "=", "!=", "in", "notin", "exists", "!"
    values: frozenset[str] = frozenset()

    def matches(self, attributes: Mapping[str, str]) -> bool:
        present = self.key in attributes
        value = attributes.get(self.key)
        if self.operator == "exists":
            return present
        if self.operator == "!":
            return not present
        if self.operator in ("=", "in"):
            return present and value in self.values
        return not present or value not in self.values  # "!=", "notin": absent matches

    def __str__(self) -> str:
        if self.operator == "exists":
            return self.key
        if self.operator == "!":
            return f"!{self.key}"
        if self.operator in ("=", "!="):
            return f"{self.key}{self.operator}{next(iter(self.values))}"
        return f"{self.key} {self.operator} ({','.join(sorted(self.values))})"


@dataclass(frozen=True)
class Selector:
    """A parsed selector: every requirement must hold. The empty selector matches all."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, attributes: Mapping[str, str]) -> bool:
        return all(r.matches(attributes) for r in self.requirements)

    def select(self, items: Iterable[tuple[str, Mapping[str, str]]]) -> list[str]:
        """The ids of `(id, attributes)` pairs this selector matches, in their order."""
        return [item_id for item_id, attributes in items if self.matches(attributes)]

    def pick(
        self,
        items: Iterable[T],
        attributes: Callable[[T], Mapping[str, str]],
        *,
        limit: int | None = None,
    ) -> list[T]:
        """The items whose `attributes(item)` this selector matches, in their order; with
        `limit`, only the first `limit + 1` (a page's rows, and the one more that tells a
        next page exists): `items` is read no further than that."""
        found: list[T] = []
        for item in items:
            if limit is not None and len(found) > limit:
                break
            if self.matches(attributes(item)):
                found.append(item)
        return found

    def __bool__(self) -> bool:
        return bool(self.requirements)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


_TOKEN = re.compile(r"\s*(\(|\)|,|!=|==|=|!|[^\s(),=!]+)")


def _tokens(text: str) -> list[str]:
    tokens, position = [], 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise InvalidSelector(f"selector {text!r}: cannot read from character {position + 1}")
        tokens.append(match.group(1))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.position = 0

    def peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> str:
        lexeme = self.peek()
        if lexeme is None:
            raise InvalidSelector(f"selector {self.text!r} ends too early")
        self.position += 1
        return lexeme

    def fail(self, what: str) -> InvalidSelector:
        return InvalidSelector(f"selector {self.text!r}: {what}")

    def key(self) -> str:
        key = self.take()
        problem = key_problem(key)
        if problem:
            raise self.fail(problem)
        return key

    def value(self, key: str) -> str:
        lexeme = self.peek()
        value = "" if lexeme in (None, ",", ")") else self.take()
        problem = value_problem(key, value)
        if problem:
            raise self.fail(problem)
        return value

    def values(self, key: str) -> frozenset[str]:
        if self.take() != "(":
            raise self.fail(f"expected '(' after 'in' or 'notin' for {key!r}")
        found = [self.value(key)]
        while (lexeme := self.take()) == ",":
            found.append(self.value(key))
        if lexeme != ")":
            raise self.fail(f"expected ',' or ')' in the values of {key!r}")
        if found == [""]:
            raise self.fail(f"'in' and 'notin' need at least one value for {key!r}")
        return frozenset(found)

    def requirement(self) -> Requirement:
        if self.peek() == "!":
            self.take()
            return Requirement(self.key(), "!")
        key = self.key()
        operator = self.peek()
        if operator in (None, ","):
            return Requirement(key, "exists")
        self.take()
        if operator in ("=", "==", "!="):
            return Requirement(key, "!=" if operator == "!=" else "=", frozenset([self.value(key)]))
        if operator in ("in", "notin"):
            return Requirement(key, operator, self.values(key))
        raise self.fail(f"unknown operator {operator!r} after {key!r} (=, ==, !=, in, notin)")

    def selector(self) -> Selector:
        requirements = []
        while self.peek() is not None:
            requirements.append(self.requirement())
            lexeme = self.peek()
            if lexeme is not None and self.take() != ",":
                raise self.fail(f"expected ',' between requirements, found {lexeme!r}")
            if lexeme == "," and self.peek() is None:
                raise self.fail("ends with ','")
        return Selector(tuple(requirements))


def parse_selector(text: str | None) -> Selector:
    """The selector `text` (None or blank: match everything), or InvalidSelector."""
    if text is None or not text.strip():
        return Selector()
    if len(text) > 4096:
        raise InvalidSelector("a selector is at most 4096 characters")
    return _Parser(text).selector()
