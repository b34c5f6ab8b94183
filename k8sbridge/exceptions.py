"""What the Kubernetes bridge refuses or meets, as exceptions that know nothing of HTTP."""

from __future__ import annotations

# No `kubernetes` import here: ready() registers how these are answered
# (k8sbridge/api/errors.py) without loading the client in every process.


class ClientUnavailable(Exception):
    """No Kubernetes configuration could be loaded: none at all (not in a pod, no
    kubeconfig), or one that is not usable (`found`: a kubeconfig that does not parse, say,
    whose reason is then worth telling the operator)."""

    def __init__(self, reason: str = "", *, found: bool = False) -> None:
        super().__init__(reason)
        self.found = found


class ClusterUnreachable(Exception):
    """The API server gave no answer to the calls a whole operation depends on."""


class KubeError(Exception):
    """A call that failed: an HTTP error from the API server, or no answer at all."""

    # Seconds the API server asked to wait before trying again (Retry-After), if it did.
    retry_after: float | None = None

    def __init__(
        self,
        *,
        verb: str,
        resource: str,
        namespace: str | None,
        name: str | None,
        status: int | None,
        reason: str,
        message: str,
    ) -> None:
        self.verb = verb
        self.resource = resource
        self.namespace = namespace
        self.name = name
        self.status = status
        self.reason = reason
        self.message = message
        super().__init__(str(self))

    @property
    def unreachable(self) -> bool:
        """True when the API server gave no answer (refused, reset, timed out)."""
        return self.status is None

    def __str__(self) -> str:
        target = f"{self.resource}/{self.name}" if self.name else self.resource
        where = f" in namespace {self.namespace}" if self.namespace else ""
        if self.status is None:
            return f"{self.verb} {target}{where}: {self.message}"
        return f"{self.verb} {target}{where}: {self.status} {self.reason}: {self.message}"
