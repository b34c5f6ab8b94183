"""How the admin shows a device's facts: status badges, times relative to now with the
exact time on hover, JSON and diffs. Every value is escaped here, once."""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.contrib.humanize.templatetags.humanize import naturaltime
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from devices.choices import DeviceStatus

STATUS_COLOURS = {
    DeviceStatus.HEALTHY: "#2e7d32",
    DeviceStatus.UNHEALTHY: "#e65100",
    DeviceStatus.UNREACHABLE: "#c62828",
    DeviceStatus.UNKNOWN: "#616161",
}
EMPTY = "—"


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def status_badge(status: str, error: str = "") -> SafeString:
    """A coloured status word; the error, when there is one, is its tooltip."""
    if error:
        return format_html(
            '<span class="ems-badge ems-{}" title="{}">{}</span>', status, error, status
        )
    return format_html('<span class="ems-badge ems-{}">{}</span>', status, status)


def exact_time(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def _time_element(moment: datetime | None, shown: Callable[[datetime], str]) -> SafeString:
    """`shown(moment)`, with the exact UTC time on hover (and in `datetime`)."""
    if moment is None:
        return format_html("{}", EMPTY)
    return format_html(
        '<time datetime="{}" title="{}">{}</time>',
        moment.isoformat(),
        exact_time(moment),
        shown(moment),
    )


def relative_time(moment: datetime | None) -> SafeString:
    """ "3 minutes ago", with the exact UTC time on hover."""
    return _time_element(moment, naturaltime)


def _short_ago(moment: datetime) -> str:
    seconds = int((timezone.now() - moment).total_seconds())
    if seconds < 0:
        return "just now"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def short_time(moment: datetime | None) -> SafeString:
    """`relative_time` in few characters ("3 min ago"), for the columns of a dense list."""
    return _time_element(moment, _short_ago)


def revision_diff(previous_config: Any, config: Any, old: str, new: str) -> SafeString:
    """A unified diff of two configs, its added and removed lines marked for colour."""
    lines = difflib.unified_diff(
        pretty(previous_config).splitlines(), pretty(config).splitlines(), old, new, lineterm=""
    )
    marked = []
    for line in lines:
        kind = "add" if line.startswith("+") else "del" if line.startswith("-") else "ctx"
        if line.startswith(("+++", "---", "@@")):
            kind = "hdr"
        marked.append(format_html('<span class="ems-diff-{}">{}</span>', kind, line))
    if not marked:
        return format_html("<pre>{}</pre>", "no change")
    # Each line is a block of its own: no newline between them.
    return format_html('<pre class="ems-diff">{}</pre>', SafeString("".join(marked)))


def live_id(device_id: str, column: str) -> str:
    """An HTML id for one live cell of a device: device ids may hold any character once
    stored by hand, so the id is made of a digest."""
    digest = hashlib.blake2s(device_id.encode(), digest_size=8).hexdigest()
    return f"live-{column}-{digest}"
