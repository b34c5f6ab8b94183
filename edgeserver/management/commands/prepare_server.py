"""`manage.py prepare_server`: what a server needs before it starts, and only what it
lacks: unapplied migrations applied, static files collected when they changed.

`make run` and the container's entrypoint run it at every start; when nothing is missing
it costs one Django start and a look at the files (a restart no longer waits ~9 s for a
migrate and a collectstatic that have nothing to do).
"""

from __future__ import annotations

import fcntl
import hashlib
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.staticfiles.finders import get_finders
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor

from edgeserver.db import one_server_at_a_time

# Written into STATIC_ROOT after a collect: the fingerprint of what was collected.
FINGERPRINT_FILE = ".collected-fingerprint"


def unapplied_migrations() -> list[str]:
    executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [f"{migration.app_label}.{migration.name}" for migration, _ in plan]


def static_fingerprint() -> str:
    """A digest of every static file the finders know (path, size, modification time)."""
    digest = hashlib.sha256()
    for finder in get_finders():
        for path, storage in finder.list(["CVS", ".*", "*~"]):
            stat = Path(storage.path(path)).stat()
            digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


class Command(BaseCommand):
    help = (
        "Apply unapplied migrations and collect static files when they changed; does "
        "nothing when the server is ready."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--skip-static",
            action="store_true",
            help="Leave static files alone (an image collects them when it is built)",
        )

    def handle(self, *args: Any, skip_static: bool, **options: Any) -> None:
        # Replicas starting together: one migrates, the others then find nothing to do.
        with one_server_at_a_time("edge-metrics-server-migrate"):
            pending = unapplied_migrations()
            if pending:
                self.stdout.write(f"Applying {len(pending)} migration(s)")
                call_command("migrate", interactive=False, verbosity=0)
        if skip_static or not settings.STATIC_ROOT:
            return
        root = Path(settings.STATIC_ROOT)
        root.mkdir(parents=True, exist_ok=True)
        # Two servers started from one checkout at once: one collects, the other then
        # finds the fingerprint written (collectstatic is not safe to run twice at once).
        with open(root.with_name(f".{root.name}.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            marker = root / FINGERPRINT_FILE
            fingerprint = static_fingerprint()
            if marker.is_file() and marker.read_text() == fingerprint:
                return
            self.stdout.write("Collecting static files")
            call_command("collectstatic", interactive=False, verbosity=0)
            marker.write_text(fingerprint)
