"""What the gunicorn master does once per server start, and its log redaction."""

from __future__ import annotations

import logging
import sys

from gunicorn.glogging import Logger

from edgeserver.logging import redact

logger = logging.getLogger("edgeserver")


class RedactingLogger(Logger):
    """gunicorn's logger, with `/d/<token>/` paths redacted from access lines."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for key in ("r", "U"):
            if key in atoms:
                atoms[key] = redact(atoms[key])
        return atoms


def on_starting(server) -> None:
    """Once, in the master, before workers fork: announce the auth mode, bootstrap a token."""
    import django

    django.setup()
    from django.conf import settings
    from django.db import connections

    from devices.tokens import operator_token_bootstrap

    if settings.AUTH_MODE == "open":
        server.log.warning(
            "AUTH_MODE=open: every route, including writes and Kubernetes actions, "
            "is open to anyone who can reach this server"
        )
    token = operator_token_bootstrap()
    connections.close_all()
    if token:
        print(
            "Bootstrap operator token (shown once, stored hashed): "
            f"{token}\n  use it as: curl -H 'Authorization: Bearer {token}' "
            f"{settings.SERVER_URL}/config",
            file=sys.stdout,
            flush=True,
        )
