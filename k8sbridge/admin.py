"""The bridge in the admin: actions it adds to the device list, the sync records and a
status page. The actions use the same services as the API."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from devices.admin import (
    Outcome,
    PageAction,
    register_device_actions,
    register_page_actions,
    summarise,
)
from devices.admin.display import relative_time
from devices.models import Device
from k8sbridge.api.errors import NOT_INITIALIZED_MESSAGE
from k8sbridge.choices import SyncTrigger
from k8sbridge.client import kube_api
from k8sbridge.exceptions import ClientUnavailable, ClusterUnreachable
from k8sbridge.models import SyncRun
from k8sbridge.results import ItemResult, SyncResult
from k8sbridge.services import cluster_status, cluster_sync, device_objects_delete

# Failures of a sync named in its summary message; the run's record keeps them all.
EXAMPLES_SHOWN = 3


def _sync_summary(namespace: str, result: SyncResult) -> str:
    text = (
        f"Synced namespace {namespace}: {len(result.created)} created, "
        f"{len(result.updated)} updated, {len(result.unchanged)} unchanged, "
        f"{len(result.deleted)} deleted, {len(result.failed)} failed"
    )
    problems = [*result.errors, *(f"{i.device_id}: {i.error}" for i in result.failed)]
    if problems:
        text += ". Failed: " + "; ".join(problems[:EXAMPLES_SHOWN])
        if len(problems) > EXAMPLES_SHOWN:
            text += f" and {len(problems) - EXAMPLES_SHOWN} more (see the run's record)"
    return text


def _item_outcome(item: ItemResult) -> Outcome:
    if item.status == "failed":
        return Outcome(item.device_id, "failed", item.error, ok=False)
    return Outcome(item.device_id, item.status, item.service)


def _cluster_problem(modeladmin: admin.ModelAdmin, request: HttpRequest, exc: Exception) -> None:
    modeladmin.message_user(request, _cluster_problem_text(exc), level=messages.ERROR)


def _cluster_problem_text(exc: Exception) -> str:
    if isinstance(exc, ClientUnavailable):
        return f"No Kubernetes cluster is configured ({NOT_INITIALIZED_MESSAGE.lower()}): {exc}"
    return f"The Kubernetes API server did not answer: {exc}"


def sync_outcomes(device_ids: list[str]) -> list[Outcome]:
    """Reconcile these devices in K8S_NAMESPACE; one outcome per device, in id order.

    Raises ClientUnavailable or ClusterUnreachable."""
    result = cluster_sync(
        namespace=settings.K8S_NAMESPACE, device_ids=device_ids, trigger=SyncTrigger.ADMIN
    )
    outcomes = []
    for device_id in sorted(device_ids):
        item = result.item_for(device_id)
        if item is not None:
            outcomes.append(_item_outcome(item))
            continue
        # Not healthy (under K8S_UNHEALTHY_POLICY=delete) or without IP: no objects.
        reason = next((i.error for i in result.not_published if i.device_id == device_id), "")
        removed = any(i.device_id == device_id for i in result.deleted)
        note = reason + ("; its objects were deleted" if removed else "")
        outcomes.append(Outcome(device_id, "not published", note))
    return outcomes


@admin.action(description="Sync selected devices to Kubernetes", permissions=["change"])
def sync_devices_to_kubernetes(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Device]
) -> None:
    """Reconcile the selected devices in K8S_NAMESPACE: one summary message."""
    try:
        outcomes = sync_outcomes(list(queryset.values_list("device_id", flat=True)))
    except (ClientUnavailable, ClusterUnreachable) as exc:
        _cluster_problem(modeladmin, request, exc)
        return
    summarise(modeladmin, request, "Kubernetes sync", outcomes)


@admin.action(description="Delete Kubernetes objects of selected devices", permissions=["change"])
def delete_kubernetes_objects(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Device]
) -> None:
    """Delete the Service, Endpoints and EndpointSlice of each selected device.

    A device that is still published gets them back at the next sync.
    """
    outcomes = []
    for device in queryset.order_by("device_id"):
        try:
            item = device_objects_delete(device=device, namespace=settings.K8S_NAMESPACE)
        except (ClientUnavailable, ClusterUnreachable) as exc:
            _cluster_problem(modeladmin, request, exc)
            return
        outcomes.append(_item_outcome(item))
    summarise(modeladmin, request, "Delete Kubernetes objects", outcomes)


def _sync_one(request: HttpRequest, device: Device) -> Outcome:
    try:
        return sync_outcomes([device.device_id])[0]
    except (ClientUnavailable, ClusterUnreachable) as exc:
        return Outcome(device.device_id, "failed", _cluster_problem_text(exc), ok=False)


def _delete_one(request: HttpRequest, device: Device) -> Outcome:
    try:
        item = device_objects_delete(device=device, namespace=settings.K8S_NAMESPACE)
    except (ClientUnavailable, ClusterUnreachable) as exc:
        return Outcome(device.device_id, "failed", _cluster_problem_text(exc), ok=False)
    return _item_outcome(item)


register_device_actions(sync_devices_to_kubernetes, delete_kubernetes_objects)
register_page_actions(
    PageAction("k8s-sync", "Sync to Kubernetes", _sync_one, order=30),
    PageAction(
        "k8s-delete",
        "Delete Kubernetes objects",
        _delete_one,
        order=40,
        confirm="Delete this device's Service and Endpoints? A published device gets them "
        "back at the next sync.",
    ),
)


@admin.register(SyncRun)
class SyncRunAdmin(admin.ModelAdmin):
    """The record of syncs, read-only, with the live status page beside it."""

    list_display = (
        "started",
        "action",
        "trigger",
        "namespace",
        "outcome",
        "objects",
        "total_healthy",
    )
    list_filter = ("outcome", "action", "trigger", "namespace")
    readonly_fields = [f.name for f in SyncRun._meta.fields]
    change_list_template = "admin/k8sbridge/syncrun/change_list.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="started", ordering="started_at")
    def started(self, run: SyncRun) -> str:
        return relative_time(run.started_at)

    @admin.display(description="objects")
    def objects(self, run: SyncRun) -> str:
        """The counts in one column: the list fits 1280 px."""
        return (
            f"{run.created} created · {run.updated} updated · {run.unchanged} unchanged · "
            f"{run.deleted} deleted · {run.failed} failed"
        )

    def get_urls(self) -> list:
        status_view = self.admin_site.admin_view(self.status_view)
        return [
            path("status/", status_view, name="k8sbridge_syncrun_status"),
            *super().get_urls(),
        ]

    def status_view(self, request: HttpRequest) -> HttpResponse:
        """What the cluster holds now, per device; works (and says why) without a cluster."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        namespace = settings.K8S_NAMESPACE
        if request.method == "POST":
            if not request.user.has_perm("devices.change_device"):
                raise PermissionDenied
            try:
                result = cluster_sync(namespace=namespace, trigger=SyncTrigger.ADMIN)
                self.message_user(
                    request,
                    _sync_summary(namespace, result),
                    level=messages.SUCCESS if result.ok else messages.WARNING,
                )
            except (ClientUnavailable, ClusterUnreachable) as exc:
                _cluster_problem(self, request, exc)
            return HttpResponseRedirect(reverse("admin:k8sbridge_syncrun_status"))
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "title": "Kubernetes sync status",
            "opts": self.model._meta,
            "namespace": namespace,
            "settings_rows": [
                ("K8S_NAMESPACE", namespace),
                ("K8S_ENDPOINTS_MODE", settings.K8S_ENDPOINTS_MODE),
                ("K8S_UNHEALTHY_POLICY", settings.K8S_UNHEALTHY_POLICY),
                ("K8S_AUTO_SYNC", settings.K8S_AUTO_SYNC),
                ("K8S_SYNC_INTERVAL", f"{settings.K8S_SYNC_INTERVAL} s"),
            ],
            "runs": SyncRun.objects.all()[:10],
            "can_sync": request.user.has_perm("devices.change_device"),
            "problem": "",
            "status": None,
            "api_server": "",
        }
        try:
            context["api_server"] = kube_api().host
            context["status"] = cluster_status(namespace=namespace)
        except ClientUnavailable as exc:
            context["problem"] = (
                f"No Kubernetes cluster is configured: {exc}. Set KUBECONFIG or run the "
                "server in a pod with a service account; GET /kubernetes/manifests still "
                "produces YAML for kubectl apply."
            )
        except ClusterUnreachable as exc:
            context["problem"] = f"The Kubernetes API server did not answer: {exc}"
        return TemplateResponse(request, "admin/k8sbridge/sync_status.html", context)
