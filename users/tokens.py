"""Credentials: operator and device bearer tokens, who they belong to and what they may do."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from edgeserver.db import one_server_at_a_time
from users.choices import ENROLLMENT, TokenKind
from users.models import ApiToken

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "ems_"  # noqa: S105 - a marker, not a secret
# Writing last_used_at on every request would make every read a write; a minute is enough
# to tell a live token from a forgotten one.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class Principal:
    """Who presented a credential. `kind` is operator, device or enrollment."""

    kind: str
    name: str
    device_id: str = ""

    is_authenticated = True
    is_active = True
    is_staff = False
    is_anonymous = False

    @property
    def username(self) -> str:
        return f"{self.kind}:{self.name}"

    def get_username(self) -> str:
        return self.username

    @property
    def is_operator(self) -> bool:
        return self.kind == TokenKind.OPERATOR

    def may_act_as_device(self, device_id: str) -> bool:
        """Whether this credential may use the device routes of `device_id`."""
        if self.kind == ENROLLMENT or self.is_operator:
            return True
        return self.kind == TokenKind.DEVICE and self.device_id == device_id


def _not_empty(device_id: str) -> str | None:
    return None if device_id else "Device id must not be empty"


# Why a device id is not one a device token may be bound to (None when it is valid). The
# grammar of device ids is the devices app's: it installs its rule at start
# (DevicesConfig.ready), so this app never imports it.
device_id_rule: Callable[[str], str | None] = _not_empty


def set_device_id_rule(rule: Callable[[str], str | None]) -> None:
    global device_id_rule
    device_id_rule = rule


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def _matches_any(raw: str, candidates: list[str]) -> bool:
    return any(hmac.compare_digest(raw.encode(), c.encode()) for c in candidates)


def api_token_create(
    *, name: str, kind: str = TokenKind.OPERATOR, device_id: str = "", created_by: str = ""
) -> tuple[ApiToken, str]:
    """Issue a token; returns the stored record and the plaintext, which is never stored."""
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        name=name,
        kind=kind,
        device_id=device_id if kind == TokenKind.DEVICE else "",
        prefix=raw[:12],
        digest=_digest(raw),
        created_by=created_by,
    )
    return token, raw


def active_token_named(name: str) -> ApiToken | None:
    """The active token of that name: names tell tokens apart in lists and logs, so two
    active ones never share one (a revoked token's name may be used again)."""
    return ApiToken.objects.filter(name=name, revoked_at__isnull=True).first()


def api_token_revoke(*, token: ApiToken) -> None:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])


def principal_for_token(raw: str) -> Principal | None:
    """The principal a bearer token stands for, or None when it is unknown or revoked."""
    if _matches_any(raw, settings.API_TOKENS):
        return Principal(kind=TokenKind.OPERATOR, name="API_TOKENS")
    if _matches_any(raw, settings.ENROLLMENT_TOKENS):
        return Principal(kind=ENROLLMENT, name="ENROLLMENT_TOKENS")
    token = (
        ApiToken.objects.filter(digest=_digest(raw), revoked_at__isnull=True)
        .only("pk", "name", "kind", "device_id", "last_used_at")
        .first()
    )
    if token is None:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return Principal(kind=token.kind, name=token.name, device_id=token.device_id)


def device_has_own_token(device_id: str) -> bool:
    """Whether an active token is bound to this device id. An id holding NUL is no device's
    (PostgreSQL cannot even compare it; the device route refuses it next, as a 400)."""
    if "\x00" in device_id:
        return False
    return ApiToken.objects.filter(
        kind=TokenKind.DEVICE, device_id=device_id, revoked_at__isnull=True
    ).exists()


def operator_token_bootstrap() -> str | None:
    """On a first start with token auth and no operator credential, issue one.

    Returns the plaintext when a token was created (the caller prints it once), else None.
    """
    if settings.AUTH_MODE != "token" or settings.API_TOKENS:
        return None
    # Replicas starting together: exactly one of them issues it.
    with one_server_at_a_time("edge-metrics-server-bootstrap-token"):
        if ApiToken.objects.filter(kind=TokenKind.OPERATOR, revoked_at__isnull=True).exists():
            return None
        _, raw = api_token_create(name="bootstrap", created_by="first start")
    logger.info("Issued the bootstrap operator token (shown once on stdout)")
    return raw


def announce_bootstrap_token(**_: object) -> str | None:
    """At a server start (edgeserver.signals.server_starting): the line that shows a newly
    issued bootstrap token, once."""
    raw = operator_token_bootstrap()
    if raw is None:
        return None
    return (
        f"Bootstrap operator token (shown once, stored hashed): {raw}\n"
        f"  use it as: curl -H 'Authorization: Bearer {raw}' {settings.SERVER_URL}/config"
    )
