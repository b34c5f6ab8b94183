"""What the gunicorn master does once per server start, and its log lines."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

from gunicorn.glogging import Logger

from edgeserver.logging import redact


class RedactingLogger(Logger):
    """gunicorn's logger: `/d/<token>/` paths redacted from access lines, and the request
    id of the response attached to each access record (a field in JSON logs)."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for key in ("r", "U"):
            if key in atoms:
                atoms[key] = redact(atoms[key])
        return atoms

    def access(self, resp, req, environ, request_time) -> None:
        if not self.access_log_enabled:
            return
        atoms = self.atoms_wrapper_class(self.atoms(resp, req, environ, request_time))
        request_id = next(
            (value for name, value in resp.headers if name.lower() == "x-request-id"), "-"
        )
        self.access_log.info(self.cfg.access_log_format, atoms, extra={"request_id": request_id})


def _prepare_metrics_dir() -> None:
    """Give workers and the monitor one fresh directory for their metric samples.

    Must run before anything imports prometheus_client, which reads the variable once.
    """
    from django.conf import settings

    directory = settings.PROMETHEUS_MULTIPROC_DIR
    if directory:
        os.makedirs(directory, exist_ok=True)
        for name in os.listdir(directory):  # samples of a previous run would be added in
            if name.endswith(".db"):
                os.unlink(os.path.join(directory, name))
    else:
        directory = tempfile.mkdtemp(prefix="ems-metrics-")
        settings.OWN_METRICS_DIR = directory
    settings.PROMETHEUS_MULTIPROC_DIR = directory
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory


def on_starting(server) -> None:
    """Once, in the master, before workers fork: metrics directory, auth announcement,
    bootstrap token."""
    _prepare_metrics_dir()
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


def child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server) -> None:
    from django.conf import settings

    own = getattr(settings, "OWN_METRICS_DIR", None)
    if own:
        shutil.rmtree(own, ignore_errors=True)
