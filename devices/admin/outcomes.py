"""What the admin's actions report: one outcome per device, a bulk action summarised in
one message (counts, a few example failures, a link to the list of the failed devices),
and the registry of buttons on a device's page (the Kubernetes bridge adds its own).

Actions call the same services as the API; this module only words their results.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from devices.admin.filters import remember_devices
from devices.models import Device

# Failures named in a summary message; the link lists them all.
EXAMPLES_SHOWN = 3


@dataclass(frozen=True)
class Outcome:
    """What an action did to one device: a word ("reloaded", "failed") and why."""

    device_id: str
    result: str
    detail: str = ""
    ok: bool = True

    @property
    def level(self) -> int:
        return messages.SUCCESS if self.ok else messages.ERROR

    @property
    def text(self) -> str:
        return f"{self.result}: {self.detail}" if self.detail else self.result


def summarise(
    modeladmin: admin.ModelAdmin, request: HttpRequest, what: str, outcomes: list[Outcome]
) -> None:
    """One message for a bulk action: "Reload of 12 devices: 9 reloaded, 3 failed", the
    first failures by id, and a link to the list of every device that failed."""
    if not outcomes:
        modeladmin.message_user(request, f"{what}: no device selected.", messages.WARNING)
        return
    counts = Counter(outcome.result for outcome in outcomes)
    failed = [outcome for outcome in outcomes if not outcome.ok]
    summary = ", ".join(f"{n} {word}" for word, n in counts.most_common())
    if not failed:
        modeladmin.message_user(
            request, f"{what} of {_devices(len(outcomes))}: {summary}.", messages.SUCCESS
        )
        return
    link = (
        reverse("admin:devices_device_changelist")
        + "?"
        + urlencode(
            {"result": remember_devices(request, [outcome.device_id for outcome in failed])}
        )
    )
    examples = format_html_join(
        "; ", "<code>{}</code> ({})", ((o.device_id, o.detail) for o in failed[:EXAMPLES_SHOWN])
    )
    more = len(failed) - EXAMPLES_SHOWN
    message = format_html(
        '{} of {}: {}. Failed: {}{}. <a href="{}">Show the {} that failed</a>',
        what,
        _devices(len(outcomes)),
        summary,
        examples,
        f" and {more} more" if more > 0 else "",
        link,
        _devices(len(failed)),
    )
    level = messages.ERROR if len(failed) == len(outcomes) else messages.WARNING
    modeladmin.message_user(request, message, level)


def _devices(count: int) -> str:
    return f"{count} device" if count == 1 else f"{count} devices"


@dataclass(frozen=True)
class PageAction:
    """A button on a device's page: `run` returns the outcome shown beside it."""

    name: str
    label: str
    run: Callable[[HttpRequest, Device], Outcome]
    order: int = 50
    # Asked before running (the browser's confirm dialog), for what cannot be undone.
    confirm: str = ""


_page_actions: dict[str, PageAction] = {}


def register_page_actions(*actions: PageAction) -> None:
    for action in actions:
        _page_actions[action.name] = action


def page_actions() -> list[PageAction]:
    return sorted(_page_actions.values(), key=lambda action: (action.order, action.name))


def page_action(name: str) -> PageAction | None:
    return _page_actions.get(name)


def outcomes_in_order(outcomes: Iterable[Outcome]) -> list[Outcome]:
    return sorted(outcomes, key=lambda outcome: outcome.device_id)
