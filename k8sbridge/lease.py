"""Leader election through a `coordination.k8s.io/v1` Lease (LEADER_ELECTION=kubernetes,
or `auto` in a pod): the elector edgeserver/leadership.py runs.

Written here rather than taken from the official client's `leaderelection` module, whose
known defects matter to a fleet server: older releases lock only ConfigMaps, an exception
in the leading callback left the lease renewed forever, and the lease is never released on
shutdown. This one makes the same calls client-go's LeaseLock makes:

- one Lease, `edge-metrics-server-leader`, in the server's namespace; `holderIdentity` is
  the pod's name, `leaseDurationSeconds` LEADER_LEASE_DURATION;
- every write is a plain update carrying the resourceVersion that was read, so of two
  replicas racing for a free or expired lease the API server lets exactly one win (409);
- another holder's lease counts as expired once its record has not changed for
  LEADER_LEASE_DURATION as measured here (like client-go: no clock of another machine is
  trusted);
- releasing (a clean shutdown) empties holderIdentity, so another replica takes over at its
  next look instead of waiting for the lease to expire.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings

from k8sbridge.exceptions import KubeError

logger = logging.getLogger(__name__)

LEASE_NAME = "edge-metrics-server-leader"
_RBAC_HINT = (
    "Grant the server's Role the verbs get/create/update on the resource "
    "coordination.k8s.io/leases (manifests/components/postgres), or "
    "set LEADER_ELECTION=database"
)
_POD_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def server_namespace() -> str:
    """The pod's own namespace when in a pod, else K8S_NAMESPACE."""
    try:
        return _POD_NAMESPACE.read_text().strip() or settings.K8S_NAMESPACE
    except OSError:
        return settings.K8S_NAMESPACE


def _micro_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


class LeaseElector:
    def __init__(self, identity: str, *, namespace: str | None = None) -> None:
        self.identity = identity
        self.namespace = namespace or server_namespace()
        # The holder's record as last seen, and when (monotonic) it was first seen so.
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0

    @property
    def _timeout(self) -> float:
        return min(settings.K8S_REQUEST_TIMEOUT, settings.LEADER_RETRY_PERIOD)

    def _api(self):
        from k8sbridge.client import kube_api

        return kube_api()

    def _explained(self, exc: KubeError) -> Exception:
        if exc.status == 403:
            return RuntimeError(f"{exc}. {_RBAC_HINT}")
        return exc

    def try_acquire_or_renew(self) -> bool:
        api = self._api()
        try:
            lease = api.read_lease(self.namespace, LEASE_NAME, timeout=self._timeout)
            if lease is None:
                return self._create(api)
            spec = lease.get("spec") or {}
            holder = spec.get("holderIdentity") or ""
            record = (holder, spec.get("renewTime"), spec.get("leaseTransitions"))
            now = time.monotonic()
            if record != self._observed:
                self._observed, self._observed_at = record, now
            duration = spec.get("leaseDurationSeconds") or settings.LEADER_LEASE_DURATION
            if holder and holder != self.identity and now - self._observed_at < duration:
                return False
            return self._take(api, lease, renewing=holder == self.identity)
        except KubeError as exc:
            if exc.status == 409:  # another replica wrote first: it leads
                return False
            raise self._explained(exc) from exc

    def _spec(self, *, acquired: str, transitions: int) -> dict[str, Any]:
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(settings.LEADER_LEASE_DURATION)),
            "acquireTime": acquired,
            "renewTime": _micro_time(datetime.now(UTC)),
            "leaseTransitions": transitions,
        }

    def _create(self, api) -> bool:
        now = _micro_time(datetime.now(UTC))
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": LEASE_NAME, "namespace": self.namespace},
            "spec": self._spec(acquired=now, transitions=0),
        }
        api.create_lease(self.namespace, body, timeout=self._timeout)
        return True

    def _take(self, api, lease: dict[str, Any], *, renewing: bool) -> bool:
        spec = lease.get("spec") or {}
        transitions = int(spec.get("leaseTransitions") or 0)
        if renewing:
            new_spec = self._spec(
                acquired=spec.get("acquireTime") or _micro_time(datetime.now(UTC)),
                transitions=transitions,
            )
        else:
            new_spec = self._spec(
                acquired=_micro_time(datetime.now(UTC)), transitions=transitions + 1
            )
        body = {**lease, "spec": new_spec}
        api.replace_lease(self.namespace, body, timeout=self._timeout)
        return True

    def release(self) -> None:
        """Empty the holder, if it is still this replica, so another takes over at once."""
        api = self._api()
        try:
            lease = api.read_lease(self.namespace, LEASE_NAME, timeout=self._timeout)
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            spec = dict(lease["spec"])
            spec.update(
                holderIdentity="",
                leaseDurationSeconds=1,
                renewTime=_micro_time(datetime.now(UTC)),
            )
            api.replace_lease(self.namespace, {**lease, "spec": spec}, timeout=self._timeout)
        except KubeError as exc:
            if exc.status != 409:  # 409: somebody else wrote it, so it is not ours anyway
                raise self._explained(exc) from exc

    def holder(self) -> str | None:
        """The holder the Lease names, while its renewal is younger than its duration."""
        lease = self._api().read_lease(self.namespace, LEASE_NAME, timeout=self._timeout)
        spec = (lease or {}).get("spec") or {}
        holder = spec.get("holderIdentity") or None
        renewed = _parse_time(spec.get("renewTime"))
        duration = spec.get("leaseDurationSeconds") or settings.LEADER_LEASE_DURATION
        if holder and renewed and datetime.now(UTC) - renewed < timedelta(seconds=duration):
            return holder
        return None
