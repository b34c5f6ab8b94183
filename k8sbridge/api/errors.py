"""How the bridge's exceptions are answered: the one table (registered at start)."""

from __future__ import annotations

from edgeserver.api.errorkinds import ErrorKind, declare
from edgeserver.api.errors import ApiError
from k8sbridge.exceptions import ClientUnavailable, ClusterUnreachable, KubeError

NOT_INITIALIZED = "Kubernetes client not initialized"
NOT_INITIALIZED_MESSAGE = "Server not running in Kubernetes environment or kubeconfig not found"
UNREACHABLE = "Kubernetes API unreachable"
API_ERROR = "Kubernetes API error"

declare(
    ErrorKind(
        "invalid_namespace",
        400,
        "the namespace is not a lowercase RFC 1123 label of at most 63 characters",
    ),
    ErrorKind("invalid_format", 400, "`?format=` is not `services` or `scrapeconfig`"),
    ErrorKind(
        API_ERROR, 502, "the Kubernetes API server refused a call the whole answer depends on"
    ),
    ErrorKind(
        NOT_INITIALIZED,
        503,
        "no Kubernetes configuration (not in a pod, no "
        "kubeconfig), or one that is not usable (the message says why)",
    ),
    ErrorKind(UNREACHABLE, 503, "the Kubernetes API server did not answer"),
)


def not_initialized_message(exc: ClientUnavailable) -> str:
    """The contract's text; for a configuration that exists but is not usable (a kubeconfig
    that does not parse), what is wrong with it too (the reason quotes no file content)."""
    return f"{NOT_INITIALIZED_MESSAGE}: {exc}" if exc.found else NOT_INITIALIZED_MESSAGE


def _not_initialized(exc: ClientUnavailable) -> ApiError:
    return ApiError(503, NOT_INITIALIZED, not_initialized_message(exc))


def _unreachable(exc: ClusterUnreachable) -> ApiError:
    return ApiError(503, UNREACHABLE, str(exc))


def _api_error(exc: KubeError) -> ApiError:
    return ApiError(502, API_ERROR, str(exc))


ERRORS = {
    ClientUnavailable: _not_initialized,
    ClusterUnreachable: _unreachable,
    KubeError: _api_error,
}
