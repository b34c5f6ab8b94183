"""The one module that talks to the Kubernetes API.

It builds the official client lazily (and again after a failure, so a cluster that
appears after the server started is used without a restart) and makes the few calls the
bridge needs. Objects go in and come out as plain dicts, exactly as the API serves them.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import urllib3
import yaml
from django.conf import settings
from urllib3.util.retry import Retry

from k8sbridge.exceptions import ClientUnavailable, KubeError
from k8sbridge.objects import ENDPOINTSLICE, Kind

logger = logging.getLogger(__name__)


def _imported_on_first_use(name: str) -> Any:
    """The module `name`, run only when one of its attributes is first read (the standard
    library's LazyLoader). The official client is ~35 MB of imports: a process that never
    talks to Kubernetes (the device monitor without K8S_AUTO_SYNC, a management command)
    never loads it, though the bridge's modules are imported everywhere."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module


# kubernetes/__init__.py imports its client and config packages: one lazy module is enough.
kubernetes = _imported_on_first_use("kubernetes")

FIELD_MANAGER = "edge-metrics-server"
APPLY_CONTENT_TYPE = "application/apply-patch+yaml"
# How often a write that met a 409 Conflict is sent again before it counts as failed.
CONFLICT_ATTEMPTS = 3
# Objects per answer of a list: the API server's pages, not one answer of every object.
LIST_PAGE_SIZE = 500
# A call the API server answered 429 (too many requests) or 5xx is sent again after a
# backoff (its Retry-After when it gives one, within the cap), this many times in all.
BUSY_ATTEMPTS = 4
BUSY_BACKOFF = 0.2
BUSY_BACKOFF_CAP = 5.0


def _api_error(
    exc: Exception, verb: str, resource: str, namespace: str | None, name: str | None
) -> KubeError:
    """Turn the client's exception into a KubeError carrying the server's own message."""
    reason, message = exc.reason or "", ""
    try:
        status_object = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        status_object = {}
    if isinstance(status_object, dict):
        reason = status_object.get("reason") or reason
        message = status_object.get("message") or ""
    return KubeError(
        verb=verb,
        resource=resource,
        namespace=namespace,
        name=name,
        status=exc.status,
        reason=reason,
        message=message or str(exc.body or "").strip() or "no details",
    )


def _retry_after(exc: Exception) -> float | None:
    """The seconds a 429 or 503 asks to wait (Retry-After), when it says."""
    value = (exc.headers or {}).get("Retry-After") if exc.headers else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _no_answer(
    exc: Exception, verb: str, resource: str, namespace: str | None, name: str | None
) -> KubeError:
    reason = exc.reason if isinstance(exc, urllib3.exceptions.MaxRetryError) else exc
    # NewConnectionError derives from ConnectTimeoutError, yet means "refused"/"no route".
    if isinstance(reason, urllib3.exceptions.TimeoutError) and not isinstance(
        reason, urllib3.exceptions.NewConnectionError
    ):
        text = f"timed out after {settings.K8S_REQUEST_TIMEOUT:g}s"
    else:
        text = f"no answer from the API server: {reason}"
    return KubeError(
        verb=verb,
        resource=resource,
        namespace=namespace,
        name=name,
        status=None,
        reason="Unreachable",
        message=text,
    )


class KubeApi:
    """The calls the bridge makes, on one built client. Safe to share between threads."""

    def __init__(self, api_client: Any, source: str) -> None:
        self.api_client = api_client
        self.source = source
        k8s = kubernetes.client
        self._core = k8s.CoreV1Api(api_client)
        self._discovery = k8s.DiscoveryV1Api(api_client)
        self._authorization = k8s.AuthorizationV1Api(api_client)
        self._coordination = k8s.CoordinationV1Api(api_client)

    @property
    def host(self) -> str:
        return self.api_client.configuration.host

    def _call(
        self,
        verb: str,
        resource: str,
        namespace: str | None,
        name: str | None,
        method: Any,
        *args: Any,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        try:
            response = method(
                *args,
                _preload_content=False,
                _request_timeout=timeout or settings.K8S_REQUEST_TIMEOUT,
                **kwargs,
            )
        except kubernetes.client.exceptions.ApiException as exc:
            error = _api_error(exc, verb, resource, namespace, name)
            error.retry_after = _retry_after(exc)
            raise error from exc
        except urllib3.exceptions.HTTPError as exc:
            raise _no_answer(exc, verb, resource, namespace, name) from exc
        return json.loads(response.data or b"{}")

    def _patient(self, call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """`call()`, sent again while the API server answers 429 or 5xx (it is busy, or
        restarting), with a growing, jittered backoff; the last answer's error otherwise."""
        for attempt in range(1, BUSY_ATTEMPTS + 1):
            try:
                return call()
            except KubeError as exc:
                busy = exc.status == 429 or (exc.status or 0) >= 500
                if not busy or attempt == BUSY_ATTEMPTS:
                    raise
                delay = exc.retry_after or BUSY_BACKOFF * 2 ** (attempt - 1)
                delay = min(BUSY_BACKOFF_CAP, delay) * random.uniform(0.8, 1.2)  # noqa: S311
                logger.info("%s; trying again in %.1fs (attempt %d)", exc, delay, attempt + 1)
                time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _methods(self, kind: Kind) -> dict[str, Any]:
        if kind is ENDPOINTSLICE:
            api, suffix = self._discovery, "endpoint_slice"
        else:
            api, suffix = (
                self._core,
                {"services": "service", "endpoints": "endpoints"}[kind.resource],
            )
        return {
            verb: getattr(api, f"{verb}_namespaced_{suffix}")
            for verb in ("list", "read", "patch", "delete")
        }

    def list(self, kind: Kind, namespace: str, label_selector: str = "") -> list[dict[str, Any]]:
        """Every object of `kind` in `namespace` that matches the selector (every object
        without one), a page of LIST_PAGE_SIZE per call; without their managedFields,
        which nothing here reads and which are most of what a real API server sends (each
        page is trimmed as it arrives)."""
        items = []
        for page in self._pages(kind, namespace, label_selector):
            for item in page:
                (item.get("metadata") or {}).pop("managedFields", None)
            items += page
        return items

    def names(self, kind: Kind, namespace: str) -> set[str]:
        """The name of every object of `kind` in `namespace`, whoever's it is; each page
        is dropped once its names are read."""
        return {
            item["metadata"]["name"] for page in self._pages(kind, namespace, "") for item in page
        }

    def _pages(
        self, kind: Kind, namespace: str, label_selector: str
    ) -> Iterator[list[dict[str, Any]]]:
        token = ""
        while True:
            extra = {"_continue": token} if token else {}
            document = self._patient(
                lambda extra=extra: self._call(
                    "list",
                    kind.resource,
                    namespace,
                    None,
                    self._methods(kind)["list"],
                    namespace,
                    label_selector=label_selector,
                    limit=LIST_PAGE_SIZE,
                    **extra,
                )
            )
            yield document.get("items") or []
            token = (document.get("metadata") or {}).get("continue") or ""
            if not token:
                return

    def get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        """The object, or None when there is none by that name."""
        try:
            return self._patient(
                lambda: self._call(
                    "get",
                    kind.resource,
                    namespace,
                    name,
                    self._methods(kind)["read"],
                    name,
                    namespace,
                )
            )
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    def apply(self, kind: Kind, body: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply of `body` (creates the object when missing); 409 is retried."""
        name = body["metadata"]["name"]
        namespace = body["metadata"]["namespace"]
        for attempt in range(1, CONFLICT_ATTEMPTS + 1):
            try:
                return self._patient(
                    lambda: self._call(
                        "patch",
                        kind.resource,
                        namespace,
                        name,
                        self._methods(kind)["patch"],
                        name,
                        namespace,
                        body,
                        field_manager=FIELD_MANAGER,
                        force=True,
                        _content_type=APPLY_CONTENT_TYPE,
                    )
                )
            except KubeError as exc:
                if exc.status != 409 or attempt == CONFLICT_ATTEMPTS:
                    raise
                logger.info("Conflict on %s, applying again (attempt %d)", exc, attempt + 1)
        raise AssertionError("unreachable")  # pragma: no cover

    def delete(self, kind: Kind, namespace: str, name: str) -> bool:
        """Delete the object; False when it was already gone. 409 is retried."""
        for attempt in range(1, CONFLICT_ATTEMPTS + 1):
            try:
                self._patient(
                    lambda: self._call(
                        "delete",
                        kind.resource,
                        namespace,
                        name,
                        self._methods(kind)["delete"],
                        name,
                        namespace,
                    )
                )
                return True
            except KubeError as exc:
                if exc.status == 404:
                    return False
                if exc.status != 409 or attempt == CONFLICT_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    # Leases (leader election, k8sbridge/lease.py): plain get, create and update, whose
    # resourceVersion makes a replica that read an old version lose the race (409).
    def read_lease(self, namespace: str, name: str, *, timeout: float) -> dict[str, Any] | None:
        try:
            return self._call(
                "get",
                "leases",
                namespace,
                name,
                self._coordination.read_namespaced_lease,
                name,
                namespace,
                timeout=timeout,
            )
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    def create_lease(self, namespace: str, body: dict[str, Any], *, timeout: float) -> dict:
        return self._call(
            "create",
            "leases",
            namespace,
            body["metadata"]["name"],
            self._coordination.create_namespaced_lease,
            namespace,
            body,
            field_manager=FIELD_MANAGER,
            timeout=timeout,
        )

    def replace_lease(self, namespace: str, body: dict[str, Any], *, timeout: float) -> dict:
        name = body["metadata"]["name"]
        return self._call(
            "update",
            "leases",
            namespace,
            name,
            self._coordination.replace_namespaced_lease,
            name,
            namespace,
            body,
            field_manager=FIELD_MANAGER,
            timeout=timeout,
        )

    def read_namespace(self, name: str) -> dict[str, Any]:
        return self._call("get", "namespaces", None, name, self._core.read_namespace, name)

    def can_i(self, verb: str, kind: Kind, namespace: str) -> bool:
        """Whether RBAC lets this client `verb` `kind` in `namespace` (SelfSubjectAccessReview)."""
        group = kind.api_version.rpartition("/")[0]
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {
                "resourceAttributes": {
                    "namespace": namespace,
                    "verb": verb,
                    "group": group,
                    "resource": kind.resource,
                }
            },
        }
        answer = self._call(
            "create",
            "selfsubjectaccessreviews",
            None,
            None,
            self._authorization.create_self_subject_access_review,
            review,
        )
        return bool((answer.get("status") or {}).get("allowed"))


_lock = threading.Lock()
_cached: tuple[tuple, KubeApi] | None = None


def _kubeconfig_paths() -> list[Path]:
    configured = settings.KUBECONFIG
    if configured:
        return [Path(p).expanduser() for p in configured.split(os.pathsep) if p]
    return [Path("~/.kube/config").expanduser()]


def _source_key() -> tuple:
    """What the client would be built from; a change (an edited kubeconfig) rebuilds it."""
    key: list[Any] = [settings.KUBECONFIG]
    for path in _kubeconfig_paths():
        try:
            key.append((str(path), path.stat().st_mtime_ns))
        except OSError:
            key.append((str(path), None))
    return tuple(key)


def _configuration() -> tuple[Any, str]:
    """An explicit KUBECONFIG wins, then the pod's service account, then ~/.kube/config
    (the order of kubectl and controller-runtime)."""
    k8s_config = kubernetes.config
    ConfigException = k8s_config.config_exception.ConfigException
    configuration = kubernetes.client.Configuration()
    if not settings.KUBECONFIG:
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)
            return configuration, "in-cluster service account"
        except ConfigException:
            pass
    paths = [p for p in _kubeconfig_paths() if p.is_file()]
    if not paths:
        raise ClientUnavailable(
            "not in a pod and no kubeconfig file at "
            + ", ".join(str(p) for p in _kubeconfig_paths())
        )
    joined = os.pathsep.join(str(p) for p in paths)
    try:
        k8s_config.load_kube_config(
            config_file=joined, client_configuration=configuration, persist_config=False
        )
    except yaml.YAMLError as exc:
        raise ClientUnavailable(
            f"kubeconfig {joined} is not valid YAML: {_yaml_problem(exc)}", found=True
        ) from None
    except (ConfigException, OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ClientUnavailable(f"kubeconfig {joined} is not usable: {exc}", found=True) from exc
    return configuration, f"kubeconfig {joined}"


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """What is wrong and where, without the snippet PyYAML quotes: a kubeconfig line may
    hold a credential, and this text reaches API answers and logs."""
    problem = getattr(exc, "problem", None) or type(exc).__name__
    mark = getattr(exc, "problem_mark", None)
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})" if mark else problem


def kube_api() -> KubeApi:
    """The shared client; built on first use and rebuilt when its configuration changes.

    Raises ClientUnavailable when there is no configuration; the next call tries again.
    """
    global _cached
    key = _source_key()
    cached = _cached
    if cached is not None and cached[0] == key:
        return cached[1]
    with _lock:
        if _cached is not None and _cached[0] == key:
            return _cached[1]
        configuration, source = _configuration()
        # Our own code retries 409s; urllib3 only reconnects, so one slow call costs one
        # timeout and the request counts stay what the bridge sent.
        configuration.retries = Retry(total=1, connect=1, read=0, status=0, other=0, redirect=0)
        # A connection for each of the sync's concurrent writers, kept between calls.
        configuration.connection_pool_maxsize = settings.K8S_WRITE_CONCURRENCY + 4
        api = KubeApi(kubernetes.client.ApiClient(configuration), source)
        # A replaced client may still serve a request in another thread: it is dropped,
        # not closed, and its connections close when it is collected.
        _cached = (key, api)
        logger.info("Kubernetes client built from %s (API server %s)", source, api.host)
        return api


def client_configured() -> bool:
    """Whether a client can be built now."""
    try:
        kube_api()
    except ClientUnavailable:
        return False
    return True
