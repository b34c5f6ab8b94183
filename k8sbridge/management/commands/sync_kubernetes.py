"""`manage.py sync_kubernetes`: the Kubernetes sync (or cleanup) from a shell or a CronJob.

The same services as the routes. Exit status: 0 when everything succeeded, 1 when any item
failed, 2 when the cluster could not be reached (no configuration, or no answer).
"""

from __future__ import annotations

import json
import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import close_old_connections

from devices.models import Device
from k8sbridge.api.errors import NOT_INITIALIZED, UNREACHABLE, not_initialized_message
from k8sbridge.api.serializers import CleanupResponseSerializer, SyncResponseSerializer
from k8sbridge.choices import SyncTrigger
from k8sbridge.exceptions import ClientUnavailable, ClusterUnreachable
from k8sbridge.objects import is_namespace_name
from k8sbridge.results import SyncResult
from k8sbridge.services import cluster_cleanup, cluster_sync

EXIT_OK, EXIT_FAILED, EXIT_UNREACHABLE = 0, 1, 2
# Below this many devices a sync is quick enough that a progress bar would only flicker.
PROGRESS_MIN_DEVICES = 20
BAR_WIDTH = 30


class Command(BaseCommand):
    help = (
        "Make the Kubernetes namespace hold the Services, Endpoints and EndpointSlices of the "
        "published devices (as POST /kubernetes/sync does). Exit status 0: all succeeded, "
        "1: an item failed, 2: the cluster could not be reached."
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Set by SIGTERM/SIGINT (or by whoever runs the loop) to end `--interval`.
        self.stop_requested = threading.Event()

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--namespace", default=None, help="Namespace (default K8S_NAMESPACE, `monitoring`)"
        )
        parser.add_argument(
            "--device",
            action="append",
            dest="device_ids",
            metavar="ID",
            help="Sync only this device (repeatable)",
        )
        parser.add_argument("--dry-run", action="store_true", help="Print the plan; write nothing")
        parser.add_argument(
            "--cleanup",
            action="store_true",
            help="Delete every object labelled managed_by=edge-metrics-server",
        )
        parser.add_argument(
            "--interval",
            type=float,
            default=None,
            metavar="SECONDS",
            help="Run again every SECONDS until stopped (SIGTERM/SIGINT)",
        )
        parser.add_argument("--output", choices=("text", "json"), default="text")

    def handle(self, *args: Any, **options: Any) -> None:
        namespace = options["namespace"] or settings.K8S_NAMESPACE
        if not is_namespace_name(namespace):
            raise CommandError(f"--namespace must be an RFC 1123 label, got {namespace!r}")
        if options["cleanup"] and options["device_ids"]:
            raise CommandError("--cleanup deletes every managed object; it takes no --device")
        interval = options["interval"]
        if interval is not None and interval <= 0:
            raise CommandError("--interval must be a positive number of seconds")
        if interval is None:
            code = self.run_once(namespace, options)
        else:
            code = self.loop(namespace, options, interval)
        if code:
            raise SystemExit(code)

    def loop(self, namespace: str, options: dict[str, Any], interval: float) -> int:
        """Sync every `interval` seconds; a stop request ends the loop with status 0."""
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: self.stop_requested.set())
        while not self.stop_requested.is_set():
            close_old_connections()
            self.run_once(namespace, options)
            self.stop_requested.wait(interval)
        return EXIT_OK

    def run_once(self, namespace: str, options: dict[str, Any]) -> int:
        try:
            if options["cleanup"]:
                return self._cleanup(namespace, options)
            return self._sync(namespace, options)
        except ClientUnavailable as exc:
            error, message = NOT_INITIALIZED, not_initialized_message(exc)
        except ClusterUnreachable as exc:
            error, message = UNREACHABLE, str(exc)
        self.stderr.write(f"{error}: {message}")
        if options["output"] == "json":
            # A JSON consumer gets a JSON document whatever happened: the error shape.
            body = {"error": error, "message": message, "namespace": namespace}
            self.stdout.write(json.dumps(body, indent=2))
        return EXIT_UNREACHABLE

    def _sync(self, namespace: str, options: dict[str, Any]) -> int:
        device_ids = options["device_ids"]
        unknown = []
        if device_ids:
            known = set(
                Device.objects.filter(device_id__in=device_ids).values_list("device_id", flat=True)
            )
            unknown = [d for d in device_ids if d not in known]
        count = len(device_ids) if device_ids else Device.objects.count()
        show_bar = (
            options["output"] == "text" and self.stdout.isatty() and count >= PROGRESS_MIN_DEVICES
        )
        result = cluster_sync(
            namespace=namespace,
            device_ids=device_ids,
            dry_run=options["dry_run"],
            trigger=SyncTrigger.COMMAND,
            progress=self._progress if show_bar else None,
        )
        if show_bar:
            self.stdout.write("\r" + " " * (BAR_WIDTH + 30) + "\r", ending="")
        if options["output"] == "json":
            body = dict(SyncResponseSerializer(result).data)
            if unknown:
                body["unknown_devices"] = unknown
            self.stdout.write(json.dumps(body, indent=2))
        else:
            self._summary(result, unknown)
        return EXIT_FAILED if (unknown or not result.ok) else EXIT_OK

    def _progress(self, done: int, total: int) -> None:
        filled = BAR_WIDTH * done // max(total, 1)
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        self.stdout.write(f"\rSyncing [{bar}] {done}/{total}", ending="")
        self.stdout.flush()

    def _summary(self, result: SyncResult, unknown: list[str]) -> None:
        out = self.stdout
        title = (
            "Kubernetes sync plan (dry run, nothing written)"
            if result.dry_run
            else ("Kubernetes sync")
        )
        out.write(
            f"{title} of namespace {result.namespace} "
            f"(K8S_ENDPOINTS_MODE={settings.K8S_ENDPOINTS_MODE}, "
            f"K8S_UNHEALTHY_POLICY={settings.K8S_UNHEALTHY_POLICY})"
        )
        out.write(
            f"created {len(result.created)}, updated {len(result.updated)}, "
            f"unchanged {len(result.unchanged)}, deleted {len(result.deleted)}, "
            f"failed {len(result.failed)} (healthy devices: {result.total_healthy})"
        )
        if result.dry_run:
            for item in [*result.created, *result.updated, *result.deleted]:
                for action in item.actions:
                    out.write(f"  would {action} ({item.device_id})")
        for message in result.errors:
            out.write(self.style.ERROR(f"error: {message}"))
        for message in result.warnings:
            out.write(self.style.WARNING(f"warning: {message}"))
        for item in result.failed:
            out.write(self.style.ERROR(f"failed: {item.device_id} ({item.service}): {item.error}"))
        for device_id in unknown:
            out.write(self.style.ERROR(f"failed: {device_id}: device not found"))

    def _cleanup(self, namespace: str, options: dict[str, Any]) -> int:
        result = cluster_cleanup(
            namespace=namespace, dry_run=options["dry_run"], trigger=SyncTrigger.COMMAND
        )
        if options["output"] == "json":
            self.stdout.write(json.dumps(CleanupResponseSerializer(result).data, indent=2))
        else:
            verb = "would delete" if options["dry_run"] else "deleted"
            self.stdout.write(
                f"Kubernetes cleanup of namespace {namespace}: {verb} "
                f"{len(result.deleted_services)} Services, "
                f"{len(result.deleted_endpoints)} Endpoints, "
                f"{len(result.deleted_endpointslices)} EndpointSlices"
            )
            for message in result.errors:
                self.stdout.write(self.style.ERROR(f"error: {message}"))
            for failure in result.failed:
                self.stdout.write(
                    self.style.ERROR(f"failed: {failure.kind} {failure.name}: {failure.error}")
                )
        return EXIT_OK if result.ok else EXIT_FAILED
