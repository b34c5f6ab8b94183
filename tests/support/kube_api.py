"""A fake Kubernetes API server over real HTTP, for the bridge's tests.

The official client talks to it through a generated kubeconfig, so every request goes
through the same serialisation, headers and error handling as against a real cluster. It
serves what the bridge uses, modelled on the real API's JSON:

- namespaces: get (and create/list for arranging tests);
- services, endpoints (core/v1) and endpointslices (discovery.k8s.io/v1): get, list with
  label selectors (`k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (..)`, `k notin (..)`),
  create, delete, and server-side apply (PATCH application/apply-patch+yaml, which creates
  a missing object and replaces the fields the applying manager owns);
- selfsubjectaccessreviews (what `health` asks RBAC);
- leases (coordination.k8s.io/v1, leader election): get, create, and update (PUT) that,
  like the real server, refuses with 409 Conflict a body whose resourceVersion is not
  the stored one (optimistic concurrency), and 422 one with a bad leaseDurationSeconds.

Like the real server it bumps resourceVersion on every change (and not on a no-op apply),
answers 401/404/409/422 with Status objects, validates names (RFC 1035 for Services,
RFC 1123 subdomains for the others), label keys and values, and refuses loopback,
link-local, multicast link-local and unspecified addresses in Endpoints and EndpointSlices.
Lists page as the real server's do: `limit` caps the items of an answer, whose
`metadata.continue` (with `remainingItemCount`) asks for the next page, in name order; a
malformed or foreign continue token is a 400. Tests can inject failures per (verb,
resource, name) (a 429 carries `Retry-After`), stall requests past the client's timeout,
add a latency to every call (`latency`, seconds, as a remote API server's round trip), and
read a log of every request.
"""

from __future__ import annotations

import base64
import bisect
import copy
import ipaddress
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

TOKEN = "fake-kube-api-token"
USER = "system:serviceaccount:monitoring:edge-metrics-server"
WRITE_VERBS = ("create", "patch", "update", "delete", "deletecollection")

RESOURCES = {
    # resource: (group, version, kind, list kind)
    "services": ("", "v1", "Service"),
    "endpoints": ("", "v1", "Endpoints"),
    "endpointslices": ("discovery.k8s.io", "v1", "EndpointSlice"),
    "leases": ("coordination.k8s.io", "v1", "Lease"),
}

_DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


class ApiFailure(Exception):
    """Answered as a Status object with this code."""

    def __init__(self, code: int, reason: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details or {}

    def status(self) -> dict[str, Any]:
        body = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


@dataclass
class Call:
    """One request as the fake API server saw it."""

    method: str
    verb: str
    resource: str
    namespace: str | None
    name: str | None
    query: dict[str, str]
    content_type: str
    status: int = 0
    body: Any = None


@dataclass
class Fault:
    verb: str
    resource: str
    name: str | None
    code: int
    times: int | None
    stall: float = 0.0


@dataclass
class _Stored:
    obj: dict[str, Any]
    # The last body each field manager applied: what "their fields" are.
    applied: dict[str, dict[str, Any]] = field(default_factory=dict)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _invalid(kind: str, name: str, causes: list[tuple[str, str]]) -> ApiFailure:
    text = ", ".join(f"{path}: {message}" for path, message in causes)
    return ApiFailure(
        422,
        "Invalid",
        f'{kind} "{name}" is invalid: {text}',
        {
            "name": name,
            "kind": kind,
            "causes": [
                {"reason": "FieldValueInvalid", "message": message, "field": path}
                for path, message in causes
            ],
        },
    )


def _name_problems(resource: str, name: Any) -> list[tuple[str, str]]:
    if not isinstance(name, str) or not name:
        return [("metadata.name", "Required value: name or generateName is required")]
    if resource == "services":
        if len(name) > 63:
            return [
                ("metadata.name", f'Invalid value: "{name}": must be no more than 63 characters')
            ]
        if not _DNS1035_LABEL.fullmatch(name):
            return [
                (
                    "metadata.name",
                    f'Invalid value: "{name}": a DNS-1035 label must consist'
                    " of lower case alphanumeric characters or '-', start with an alphabetic"
                    " character, and end with an alphanumeric character (regex used for "
                    "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
                )
            ]
        return []
    if len(name) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(name):
        return [
            (
                "metadata.name",
                f'Invalid value: "{name}": a lowercase RFC 1123 subdomain '
                "must consist of lower case alphanumeric characters, '-' or '.', and must "
                "start and end with an alphanumeric character",
            )
        ]
    return []


def _qualified_key_problems(path: str, key: str) -> list[tuple[str, str]]:
    prefix, _, name = key.rpartition("/")
    problems = []
    if prefix and (len(prefix) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(prefix)):
        problems.append((path, f'Invalid value: "{key}": prefix part must be a DNS-1123 subdomain'))
    if not name or len(name) > 63 or not _QUALIFIED_NAME.fullmatch(name):
        problems.append(
            (
                path,
                f'Invalid value: "{key}": name part must consist of '
                "alphanumeric characters, '-', '_' or '.', and must start and end "
                "with an alphanumeric character",
            )
        )
    return problems


def _metadata_problems(metadata: dict[str, Any]) -> list[tuple[str, str]]:
    problems = []
    for key, value in (metadata.get("labels") or {}).items():
        problems += _qualified_key_problems("metadata.labels", key)
        if not isinstance(value, str):
            problems.append(("metadata.labels", f"Invalid value: {value!r}: must be a string"))
        elif len(value) > 63:
            problems.append(
                ("metadata.labels", f'Invalid value: "{value}": must be no more than 63 characters')
            )
        elif not _LABEL_VALUE.fullmatch(value):
            problems.append(
                (
                    "metadata.labels",
                    f'Invalid value: "{value}": a valid label must'
                    " be an empty string or consist of alphanumeric characters, '-',"
                    " '_' or '.', and must start and end with an alphanumeric "
                    "character",
                )
            )
    for key, value in (metadata.get("annotations") or {}).items():
        problems += _qualified_key_problems("metadata.annotations", key)
        if not isinstance(value, str):
            problems.append(("metadata.annotations", f"Invalid value: {value!r}: must be a string"))
    return problems


def _special_ip_problem(path: str, value: Any, family: int | None = None) -> list[tuple]:
    """The real server's ValidateNonSpecialIP (and the address family of a slice)."""
    try:
        address = ipaddress.ip_address(value)
    except (TypeError, ValueError):
        return [(path, f'Invalid value: "{value}": must be a valid IP address')]
    if family is not None and address.version != family:
        return [(path, f'Invalid value: "{value}": must be a valid IPv{family} address')]
    if address.is_unspecified:
        return [(path, f'Invalid value: "{value}": may not be unspecified (0.0.0.0, ::)')]
    if address.is_loopback:
        return [
            (
                path,
                f'Invalid value: "{value}": may not be in the loopback range '
                "(127.0.0.0/8, ::1/128)",
            )
        ]
    if address.is_link_local:
        return [
            (
                path,
                f'Invalid value: "{value}": may not be in the link-local range '
                "(169.254.0.0/16, fe80::/10)",
            )
        ]
    link_local_multicast = (
        ipaddress.ip_network("224.0.0.0/24")
        if address.version == 4
        else ipaddress.ip_network("ff02::/16")
    )
    if address in link_local_multicast:
        return [
            (
                path,
                f'Invalid value: "{value}": may not be in the link-local multicast '
                "range (224.0.0.0/24, ff02::/16)",
            )
        ]
    return []


def _port_problems(path: str, ports: Any, *, name_required: bool) -> list[tuple[str, str]]:
    problems = []
    for i, port in enumerate(ports or []):
        number = port.get("port")
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= 65535:
            problems.append(
                (
                    f"{path}[{i}].port",
                    f"Invalid value: {number!r}: must be between 1 and 65535, inclusive",
                )
            )
        if port.get("protocol", "TCP") not in ("TCP", "UDP", "SCTP"):
            problems.append((f"{path}[{i}].protocol", "Unsupported value"))
        name = port.get("name")
        if name_required and not name:
            problems.append((f"{path}[{i}].name", "Required value"))
        if name and (len(name) > 15 or not _DNS1123_LABEL.fullmatch(name)):
            problems.append((f"{path}[{i}].name", f'Invalid value: "{name}"'))
    return problems


def _spec_problems(resource: str, obj: dict[str, Any]) -> list[tuple[str, str]]:
    problems = []
    if resource == "leases":
        duration = (obj.get("spec") or {}).get("leaseDurationSeconds")
        if duration is not None and (not isinstance(duration, int) or duration <= 0):
            problems.append(
                ("spec.leaseDurationSeconds", f"Invalid value: {duration}: must be greater than 0")
            )
    elif resource == "services":
        spec = obj.get("spec") or {}
        ports = spec.get("ports") or []
        problems += _port_problems("spec.ports", ports, name_required=len(ports) > 1)
        cluster_ip = spec.get("clusterIP")
        if cluster_ip not in (None, "", "None"):
            try:
                ipaddress.ip_address(cluster_ip)
            except ValueError:
                problems.append(("spec.clusterIP", f'Invalid value: "{cluster_ip}"'))
    elif resource == "endpoints":
        for i, subset in enumerate(obj.get("subsets") or []):
            for key in ("addresses", "notReadyAddresses"):
                for j, address in enumerate(subset.get(key) or []):
                    problems += _special_ip_problem(
                        f"subsets[{i}].{key}[{j}].ip", address.get("ip")
                    )
            problems += _port_problems(
                f"subsets[{i}].ports",
                subset.get("ports"),
                name_required=len(subset.get("ports") or []) > 1,
            )
    elif resource == "endpointslices":
        address_type = obj.get("addressType")
        if address_type not in ("IPv4", "IPv6", "FQDN"):
            problems.append(
                (
                    "addressType",
                    f'Unsupported value: "{address_type}": supported '
                    'values: "FQDN", "IPv4", "IPv6"',
                )
            )
        family = {"IPv4": 4, "IPv6": 6}.get(address_type)
        for i, endpoint in enumerate(obj.get("endpoints") or []):
            addresses = endpoint.get("addresses") or []
            if not 1 <= len(addresses) <= 100:
                problems.append((f"endpoints[{i}].addresses", "must contain 1 to 100 items"))
            if family:
                for j, address in enumerate(addresses):
                    problems += _special_ip_problem(
                        f"endpoints[{i}].addresses[{j}]", address, family
                    )
            ready = (endpoint.get("conditions") or {}).get("ready")
            if ready is not None and not isinstance(ready, bool):
                problems.append((f"endpoints[{i}].conditions.ready", "must be a boolean"))
        problems += _port_problems("ports", obj.get("ports"), name_required=False)
    return problems


def _requirements(selector: str) -> list[tuple[str, str, list[str]]]:
    """Parse a label selector into (operator, key, values) requirements."""
    parts, depth, current = [], 0, ""
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    requirements = []
    for raw in parts:
        part = raw.strip()
        if not part:
            continue
        set_match = re.fullmatch(r"(\S+)\s+(in|notin)\s+\((.*)\)", part)
        if set_match:
            values = [v.strip() for v in set_match.group(3).split(",") if v.strip()]
            requirements.append((set_match.group(2), set_match.group(1), values))
        elif "!=" in part:
            key, value = part.split("!=", 1)
            requirements.append(("!=", key.strip(), [value.strip()]))
        elif "==" in part:
            key, value = part.split("==", 1)
            requirements.append(("=", key.strip(), [value.strip()]))
        elif "=" in part:
            key, value = part.split("=", 1)
            requirements.append(("=", key.strip(), [value.strip()]))
        elif part.startswith("!"):
            requirements.append(("!exists", part[1:].strip(), []))
        else:
            requirements.append(("exists", part, []))
    for _, key, _ in requirements:
        if _qualified_key_problems("labelSelector", key):
            raise ApiFailure(
                400, "BadRequest", f"unable to parse requirement: invalid label key {key!r}"
            )
    return requirements


def selector_matches(selector: str, labels: dict[str, str]) -> bool:
    return _matches(_requirements(selector), labels)


def _matches(requirements: list[tuple[str, str, list[str]]], labels: dict[str, str]) -> bool:
    for operator, key, values in requirements:
        present = key in labels
        value = labels.get(key)
        if operator == "=" and value != values[0]:
            return False
        if operator == "!=" and present and value == values[0]:
            return False
        if operator == "exists" and not present:
            return False
        if operator == "!exists" and present:
            return False
        if operator == "in" and value not in values:
            return False
        if operator == "notin" and present and value in values:
            return False
    return True


class FakeKubeApi:
    """The fake API server's state and behaviour; `serve()` runs it on a loopback port."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.namespaces: dict[str, dict[str, Any]] = {}
        self.store: dict[tuple[str, str, str], _Stored] = {}
        self.calls: list[Call] = []
        self.faults: list[Fault] = []
        self._resource_version = 1000
        # Per (resource, namespace, selector): the names a list matched, and at which
        # resourceVersion (see _matching_names).
        self._listed: dict[tuple[str, str, str], tuple[int, list[str]]] = {}
        # Seconds each request waits before it is answered (outside the lock, so requests
        # in flight together overlap their waits as on a real server).
        self.latency = 0.0
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- arranging and inspecting (tests) ------------------------------------------------

    @property
    def url(self) -> str:
        assert self._httpd is not None
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def add_namespace(self, name: str) -> None:
        with self.lock:
            self.namespaces[name] = {
                "metadata": {
                    "name": name,
                    "uid": str(uuid.uuid4()),
                    "resourceVersion": self._bump(),
                    "creationTimestamp": _now(),
                    "labels": {"kubernetes.io/metadata.name": name},
                },
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            }

    def put(
        self, resource: str, namespace: str, obj: dict[str, Any], *, manager: str = "kubectl"
    ) -> dict[str, Any]:
        """Store an object as another client would have created it (not logged)."""
        with self.lock:
            body = copy.deepcopy(obj)
            body.setdefault("metadata", {})["namespace"] = namespace
            return self._create(resource, namespace, body, manager=manager, operation="Update")

    def get(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            stored = self.store.get((resource, namespace, name))
            return copy.deepcopy(stored.obj) if stored else None

    def names(self, resource: str, namespace: str = "monitoring") -> list[str]:
        with self.lock:
            return sorted(n for (r, ns, n) in self.store if r == resource and ns == namespace)

    def objects(self, resource: str, namespace: str = "monitoring") -> list[dict[str, Any]]:
        return [self.get(resource, namespace, name) for name in self.names(resource, namespace)]

    def fail(
        self,
        verb: str,
        resource: str,
        name: str | None = None,
        *,
        code: int = 403,
        times: int | None = None,
    ) -> None:
        """Answer matching requests with `code` (403, 409, 500, ...), `times` times or always."""
        with self.lock:
            self.faults.append(Fault(verb, resource, name, code, times))

    def stall(
        self,
        verb: str,
        resource: str,
        name: str | None = None,
        *,
        seconds: float = 10.0,
        times: int | None = None,
    ) -> None:
        """Never answer matching requests (for `seconds`, then drop the connection); they
        are not carried out, like a request lost in a partitioned network."""
        with self.lock:
            self.faults.append(Fault(verb, resource, name, 0, times, stall=seconds))

    def requests(self, verb: str | None = None, resource: str | None = None) -> list[Call]:
        with self.lock:
            return [
                c
                for c in self.calls
                if (verb is None or c.verb == verb) and (resource is None or c.resource == resource)
            ]

    def writes(self) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.verb in WRITE_VERBS]

    def clear_log(self) -> None:
        with self.lock:
            self.calls.clear()

    def write_kubeconfig(self, path: Path, *, namespace: str = "monitoring") -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": TOKEN}}],
            "contexts": [
                {
                    "name": "fake",
                    "context": {"cluster": "fake", "user": "fake", "namespace": namespace},
                }
            ],
            "current-context": "fake",
        }
        path.write_text(yaml.safe_dump(config))
        return path

    # ---- serving ------------------------------------------------------------------------

    def start(self) -> FakeKubeApi:
        api = self

        class Handler(BaseHTTPRequestHandler):
            # Connections are kept between calls, as a real API server keeps them.
            protocol_version = "HTTP/1.1"
            # Segments leave at once, as from Go's servers (TCP_NODELAY): with Nagle's
            # algorithm an answer's body waited for the client's delayed ACK of its
            # headers, ~40 ms per call.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                api._handle(self)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

        class Server(ThreadingHTTPServer):
            # A sync writes from many threads at once: the default backlog of 5 would
            # reset their connections.
            request_queue_size = 512

        self._httpd = Server(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="fake-kube-api",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # ---- request handling -----------------------------------------------------------------

    def _bump(self) -> str:
        self._resource_version += 1
        return str(self._resource_version)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        content_type = (handler.headers.get("Content-Type") or "").split(";")[0].strip()
        method = handler.command
        resource, namespace, name = self._route(parts.path)
        verb = {
            "GET": "get" if name else "list",
            "POST": "create",
            "PATCH": "patch",
            "PUT": "update",
            "DELETE": "delete" if name else "deletecollection",
        }[method]
        call = Call(method, verb, resource or parts.path, namespace, name, query, content_type)
        with self.lock:
            self.calls.append(call)
        if self.latency:
            time.sleep(self.latency)
        code, body = self._answer(handler, call, raw)
        call.status = code
        if code == 0:  # stalled: no answer at all, and the connection dropped
            handler.close_connection = True
            return
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        try:
            handler.send_response(code)
            if code == 429:
                handler.send_header("Retry-After", "1")
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass

    @staticmethod
    def _route(path: str) -> tuple[str | None, str | None, str | None]:
        segments = [unquote(s) for s in path.strip("/").split("/")]
        if segments[:2] == ["api", "v1"]:
            rest = segments[2:]
        elif segments[:3] in (
            ["apis", "discovery.k8s.io", "v1"],
            ["apis", "authorization.k8s.io", "v1"],
            ["apis", "coordination.k8s.io", "v1"],
        ):
            rest = segments[3:]
        else:
            return None, None, None
        if rest == ["selfsubjectaccessreviews"]:
            return "selfsubjectaccessreviews", None, None
        if rest[:1] == ["namespaces"]:
            if len(rest) == 1:
                return "namespaces", None, None
            if len(rest) == 2:
                return "namespaces", None, rest[1]
            if len(rest) in (3, 4) and rest[2] in RESOURCES:
                return rest[2], rest[1], rest[3] if len(rest) == 4 else None
        return None, None, None

    def _fault_for(self, call: Call) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if (
                    fault.verb == call.verb
                    and fault.resource == call.resource
                    and fault.name in (None, call.name)
                    and (fault.times is None or fault.times > 0)
                ):
                    if fault.times is not None:
                        fault.times -= 1
                    return fault
        return None

    def _answer(
        self, handler: BaseHTTPRequestHandler, call: Call, raw: bytes
    ) -> tuple[int, dict[str, Any] | bytes]:
        auth = handler.headers.get("Authorization") or ""
        if auth != f"Bearer {TOKEN}":
            return 401, ApiFailure(401, "Unauthorized", "Unauthorized").status()
        fault = self._fault_for(call)
        if fault is not None and fault.stall:
            self._stopping.wait(fault.stall)
            return 0, {}
        try:
            if fault is not None:
                raise self._injected(fault, call)
            return self._dispatch(call, raw)
        except ApiFailure as failure:
            return failure.code, failure.status()

    @staticmethod
    def _injected(fault: Fault, call: Call) -> ApiFailure:
        group = RESOURCES.get(call.resource, ("",))[0]
        target = f'{call.resource} "{call.name}"' if call.name else call.resource
        if fault.code == 403:
            scope = f' in the namespace "{call.namespace}"' if call.namespace else ""
            return ApiFailure(
                403,
                "Forbidden",
                f'{target} is forbidden: User "{USER}" cannot {call.verb} resource '
                f'"{call.resource}" in API group "{group}"{scope}',
                {"name": call.name or "", "kind": call.resource},
            )
        if fault.code == 409:
            return ApiFailure(
                409,
                "Conflict",
                f"Operation cannot be fulfilled on {target}: the object has been modified; "
                "please apply your changes to the latest version and try again",
                {"name": call.name or "", "kind": call.resource},
            )
        if fault.code == 429:
            return ApiFailure(
                429,
                "TooManyRequests",
                "the server has received too many requests and has asked us to try again later",
            )
        return ApiFailure(
            fault.code,
            "InternalError",
            f"Internal error occurred: injected failure of {call.verb} {target}",
        )

    def _dispatch(self, call: Call, raw: bytes) -> tuple[int, dict[str, Any] | bytes]:
        if call.resource == "selfsubjectaccessreviews" and call.verb == "create":
            return 201, self._access_review(json.loads(raw or b"{}"))
        if call.resource == "namespaces":
            return self._namespaces(call, raw)
        if call.resource not in RESOURCES or call.namespace is None:
            raise ApiFailure(404, "NotFound", "the server could not find the requested resource")
        with self.lock:
            if call.verb == "list":
                return 200, self._list(call)
            if call.verb == "get":
                return 200, self._stored(call).obj
            if call.verb == "create":
                body = json.loads(raw or b"{}")
                if body.get("metadata", {}).get("namespace", call.namespace) != call.namespace:
                    raise ApiFailure(
                        400,
                        "BadRequest",
                        "the namespace of the provided object "
                        "does not match the namespace sent on the request",
                    )
                return 201, self._create(
                    call.resource,
                    call.namespace,
                    body,
                    manager=call.query.get("fieldManager", "unknown"),
                    operation="Update",
                )
            if call.verb == "patch":
                return self._apply(call, raw)
            if call.verb == "update":
                return 200, self._update(call, json.loads(raw or b"{}"))
            if call.verb == "delete":
                return 200, self._delete(call.resource, call.namespace, call.name)
        raise ApiFailure(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )

    def _access_review(self, review: dict[str, Any]) -> dict[str, Any]:
        attributes = (review.get("spec") or {}).get("resourceAttributes") or {}
        denied = any(
            f.code == 403
            and f.verb == attributes.get("verb")
            and f.resource == attributes.get("resource")
            and f.name is None
            and (f.times is None or f.times > 0)
            for f in self.faults
        )
        status = {"allowed": not denied}
        if denied:
            status["reason"] = "no RBAC policy matched"
        return {**review, "status": status}

    def _namespaces(self, call: Call, raw: bytes) -> tuple[int, dict[str, Any]]:
        with self.lock:
            if call.verb == "get":
                if call.name not in self.namespaces:
                    raise ApiFailure(
                        404,
                        "NotFound",
                        f'namespaces "{call.name}" not found',
                        {"name": call.name, "kind": "namespaces"},
                    )
                return 200, {"kind": "Namespace", "apiVersion": "v1", **self.namespaces[call.name]}
            if call.verb == "create":
                name = (json.loads(raw or b"{}").get("metadata") or {}).get("name")
                if name in self.namespaces:
                    raise ApiFailure(409, "AlreadyExists", f'namespaces "{name}" already exists')
                self.add_namespace(name)
                return 201, {"kind": "Namespace", "apiVersion": "v1", **self.namespaces[name]}
            if call.verb == "delete":
                if self.namespaces.pop(call.name, None) is None:
                    raise ApiFailure(404, "NotFound", f'namespaces "{call.name}" not found')
                for key in [k for k in self.store if k[1] == call.name]:
                    del self.store[key]
                self._bump()
                return 200, {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": {"name": call.name, "kind": "namespaces"},
                }
            if call.verb == "list":
                return 200, {
                    "kind": "NamespaceList",
                    "apiVersion": "v1",
                    "metadata": {"resourceVersion": str(self._resource_version)},
                    "items": list(self.namespaces.values()),
                }
        raise ApiFailure(405, "MethodNotAllowed", "not supported by the fake")

    def _stored(self, call: Call) -> _Stored:
        stored = self.store.get((call.resource, call.namespace, call.name))
        if stored is None:
            raise ApiFailure(
                404,
                "NotFound",
                f'{call.resource} "{call.name}" not found',
                {"name": call.name, "kind": call.resource},
            )
        return stored

    def _list(self, call: Call) -> bytes:
        selector = call.query.get("labelSelector", "")
        group, version, kind = RESOURCES[call.resource]
        after = self._continue_from(call)
        try:
            limit = int(call.query.get("limit") or 0)
        except ValueError:
            raise ApiFailure(400, "BadRequest", "limit must be an integer") from None
        listed = self._matching_names(call.resource, call.namespace, selector)
        matching = listed[bisect.bisect_right(listed, after) :] if after else listed
        page = matching[:limit] if limit else matching
        items = [
            {
                key: value
                for key, value in self.store[(call.resource, call.namespace, name)].obj.items()
                if key not in ("kind", "apiVersion")
            }
            for name in page
        ]
        metadata: dict[str, Any] = {"resourceVersion": str(self._resource_version)}
        if len(matching) > len(page):
            metadata["continue"] = self._continue_token(call, page[-1])
            metadata["remainingItemCount"] = len(matching) - len(page)
        document = {
            "kind": f"{kind}List",
            "apiVersion": f"{group}/{version}" if group else version,
            "metadata": metadata,
            "items": items,
        }
        # Serialized here, under the lock, so the items need no copy of their own.
        return json.dumps(document).encode()

    def _matching_names(self, resource: str, namespace: str, selector: str) -> list[str]:
        """The sorted names a list with this selector matches, kept until the next write
        (a sync reads every page of a list in a row: each page need not scan the store)."""
        key = (resource, namespace, selector)
        version, names = self._listed.get(key, (None, []))
        if version != self._resource_version:
            requirements = _requirements(selector)
            names = sorted(
                name
                for (r, ns, name), stored in self.store.items()
                if r == resource
                and ns == namespace
                and _matches(requirements, stored.obj["metadata"].get("labels") or {})
            )
            self._listed[key] = (self._resource_version, names)
        return names

    @staticmethod
    def _continue_token(call: Call, last_name: str) -> str:
        state = {"r": call.resource, "ns": call.namespace, "after": last_name}
        return base64.urlsafe_b64encode(json.dumps(state).encode()).decode()

    @staticmethod
    def _continue_from(call: Call) -> str:
        """The name a continued list starts after ("" for a first page)."""
        token = call.query.get("continue")
        if not token:
            return ""
        try:
            state = json.loads(base64.urlsafe_b64decode(token.encode()))
            if (state["r"], state["ns"]) != (call.resource, call.namespace):
                raise ValueError("token of another list")
            return str(state["after"])
        except (ValueError, KeyError, TypeError):
            raise ApiFailure(
                400, "BadRequest", "continue key is not valid: malformed continue token"
            ) from None

    def _validate(self, resource: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        kind = RESOURCES[resource][2]
        metadata = obj.get("metadata") or {}
        problems = _name_problems(resource, metadata.get("name"))
        problems += _metadata_problems(metadata)
        problems += _spec_problems(resource, obj)
        if (
            old is not None
            and resource == "endpointslices"
            and (old.get("addressType") != obj.get("addressType"))
        ):
            problems.append(("addressType", "Invalid value: field is immutable"))
        if old is not None and resource == "services":
            before = (old.get("spec") or {}).get("clusterIP")
            after = (obj.get("spec") or {}).get("clusterIP")
            if after and before != after:
                problems.append(("spec.clusterIP", "Invalid value: field is immutable"))
        if problems:
            raise _invalid(kind, str(metadata.get("name")), problems)

    @staticmethod
    def _defaults(resource: str, obj: dict[str, Any], counter: int) -> None:
        """Fields the real API server fills in (the bridge must not mistake them for drift)."""
        if resource != "services":
            return
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        if not spec.get("clusterIP"):
            spec["clusterIP"] = f"10.96.{counter // 250 % 250}.{counter % 250 + 1}"
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
        spec.setdefault("sessionAffinity", "None")
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
        obj.setdefault("status", {"loadBalancer": {}})

    def _require_namespace(self, namespace: str) -> None:
        if namespace not in self.namespaces:
            raise ApiFailure(
                404,
                "NotFound",
                f'namespaces "{namespace}" not found',
                {"name": namespace, "kind": "namespaces"},
            )

    def _managed_fields(
        self, stored: _Stored, manager: str, operation: str, api_version: str
    ) -> None:
        entries = [
            e
            for e in stored.obj["metadata"].get("managedFields") or []
            if e.get("manager") != manager
        ]
        entries.append(
            {
                "manager": manager,
                "operation": operation,
                "apiVersion": api_version,
                "time": _now(),
                "fieldsType": "FieldsV1",
                "fieldsV1": {},
            }
        )
        stored.obj["metadata"]["managedFields"] = entries

    def _create(
        self, resource: str, namespace: str, body: dict[str, Any], *, manager: str, operation: str
    ) -> dict[str, Any]:
        self._require_namespace(namespace)
        group, version, kind = RESOURCES[resource]
        name = (body.get("metadata") or {}).get("name")
        if (resource, namespace, name) in self.store:
            raise ApiFailure(
                409,
                "AlreadyExists",
                f'{resource} "{name}" already exists',
                {"name": name, "kind": resource},
            )
        obj = copy.deepcopy(body)
        for key in ("labels", "annotations"):  # empty maps are omitted, as in the real API
            if not (obj.get("metadata") or {}).get(key):
                (obj.get("metadata") or {}).pop(key, None)
        obj["kind"] = kind
        obj["apiVersion"] = f"{group}/{version}" if group else version
        self._validate(resource, obj, None)
        self._defaults(resource, obj, len(self.store))
        obj["metadata"].update(
            namespace=namespace,
            uid=str(uuid.uuid4()),
            resourceVersion=self._bump(),
            creationTimestamp=_now(),
        )
        stored = _Stored(obj)
        if operation == "Apply":
            stored.applied[manager] = copy.deepcopy(body)
        self._managed_fields(stored, manager, operation, obj["apiVersion"])
        self.store[(resource, namespace, name)] = stored
        return copy.deepcopy(obj)

    def _apply(self, call: Call, raw: bytes) -> tuple[int, dict[str, Any]]:
        if call.content_type != "application/apply-patch+yaml":
            raise ApiFailure(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an "
                f"unknown format - accepted media types include: "
                f"application/apply-patch+yaml (got {call.content_type!r})",
            )
        manager = call.query.get("fieldManager")
        if not manager:
            raise ApiFailure(
                422,
                "Invalid",
                'PatchOptions.meta.k8s.io "" is invalid: '
                "fieldManager: Required value: is required for apply patch",
            )
        try:
            # The official client sends JSON (which is YAML): read it as such first.
            body = json.loads(raw or b"{}")
        except ValueError:
            try:
                body = yaml.safe_load(raw.decode() or "{}")
            except yaml.YAMLError as exc:
                raise ApiFailure(400, "BadRequest", f"error decoding YAML: {exc}") from exc
        group, version, kind = RESOURCES[call.resource]
        api_version = f"{group}/{version}" if group else version
        if body.get("apiVersion") != api_version or body.get("kind") != kind:
            raise ApiFailure(
                400,
                "BadRequest",
                f"apiVersion and kind must be {api_version} "
                f"{kind}, got {body.get('apiVersion')} {body.get('kind')}",
            )
        metadata = body.get("metadata") or {}
        if metadata.get("name") != call.name:
            raise ApiFailure(
                400,
                "BadRequest",
                f"the name of the object "
                f"({metadata.get('name')}) does not match the name on the URL "
                f"({call.name})",
            )
        if metadata.get("namespace", call.namespace) != call.namespace:
            raise ApiFailure(
                400,
                "BadRequest",
                "the namespace of the provided object does not "
                "match the namespace sent on the request",
            )
        stored = self.store.get((call.resource, call.namespace, call.name))
        if stored is None:
            return 201, self._create(
                call.resource, call.namespace, body, manager=manager, operation="Apply"
            )
        force = call.query.get("force") in ("true", "True")
        others = {e.get("manager") for e in stored.obj["metadata"].get("managedFields") or []} - {
            manager
        }
        if others and not force:
            raise ApiFailure(
                409,
                "Conflict",
                f"Apply failed with conflicts: conflict with {sorted(others)[0]!r}",
                {"name": call.name, "kind": call.resource},
            )
        before = copy.deepcopy(stored.obj)
        merged = self._merged(stored, manager, body)
        self._validate(call.resource, merged, stored.obj)
        comparable = ("metadata", "spec", "subsets", "endpoints", "ports", "addressType")

        def content(obj: dict[str, Any]) -> dict[str, Any]:
            view = {k: copy.deepcopy(obj.get(k)) for k in comparable}
            view["metadata"] = {
                k: v
                for k, v in (view["metadata"] or {}).items()
                if k not in ("managedFields", "resourceVersion")
            }
            return view

        stored.applied[manager] = copy.deepcopy(body)
        if content(merged) != content(before) or manager not in {
            e.get("manager") for e in before["metadata"].get("managedFields") or []
        }:
            merged["metadata"]["resourceVersion"] = self._bump()
            stored.obj = merged
            self._managed_fields(stored, manager, "Apply", api_version)
            if force and others:
                # Forcing takes the fields over: other managers lose them (simplified:
                # they no longer appear as managers of this object).
                stored.obj["metadata"]["managedFields"] = [
                    e for e in stored.obj["metadata"]["managedFields"] if e["manager"] == manager
                ]
        return 200, copy.deepcopy(stored.obj)

    @staticmethod
    def _merged(stored: _Stored, manager: str, body: dict[str, Any]) -> dict[str, Any]:
        """Apply `body` for `manager`: its labels/annotations/owners replace what it applied
        before (keys it dropped go away, others' keys stay); the fields it sets replace the
        current ones; server-filled fields it does not set stay."""
        merged = copy.deepcopy(stored.obj)
        previous = stored.applied.get(manager) or {}
        meta, new_meta = merged["metadata"], body.get("metadata") or {}
        old_meta = previous.get("metadata") or {}
        for key in ("labels", "annotations"):
            current = dict(meta.get(key) or {})
            for dropped in set(old_meta.get(key) or {}) - set(new_meta.get(key) or {}):
                current.pop(dropped, None)
            current.update(new_meta.get(key) or {})
            if current:
                meta[key] = current
            else:
                meta.pop(key, None)
        if "ownerReferences" in new_meta:
            meta["ownerReferences"] = copy.deepcopy(new_meta["ownerReferences"])
        elif "ownerReferences" in old_meta:
            meta.pop("ownerReferences", None)
        for key in ("subsets", "endpoints", "ports", "addressType"):
            if key in body:
                merged[key] = copy.deepcopy(body[key])
            elif key in previous:
                merged.pop(key, None)
        if "spec" in body:
            spec = merged.setdefault("spec", {})
            for dropped in set(previous.get("spec") or {}) - set(body["spec"]):
                spec.pop(dropped, None)
            spec.update(copy.deepcopy(body["spec"]))
            for port in spec.get("ports") or []:
                port.setdefault("protocol", "TCP")
                port.setdefault("targetPort", port.get("port"))
        return merged

    def _update(self, call: Call, body: dict[str, Any]) -> dict[str, Any]:
        """PUT: the whole object replaced, only from the version the client last read."""
        stored = self._stored(call)
        metadata = body.get("metadata") or {}
        if metadata.get("name") != call.name:
            raise ApiFailure(400, "BadRequest", "the name of the object does not match the URL")
        sent = metadata.get("resourceVersion")
        if not sent:
            raise _invalid(
                RESOURCES[call.resource][2],
                call.name,
                [("metadata.resourceVersion", "Invalid value: 0: must be specified for an update")],
            )
        if sent != stored.obj["metadata"]["resourceVersion"]:
            raise ApiFailure(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {call.resource} "{call.name}": the object '
                "has been modified; please apply your changes to the latest version and try "
                "again",
                {"name": call.name, "kind": call.resource},
            )
        obj = copy.deepcopy(body)
        group, version, kind = RESOURCES[call.resource]
        obj["kind"] = kind
        obj["apiVersion"] = f"{group}/{version}" if group else version
        self._validate(call.resource, obj, stored.obj)
        kept = {k: stored.obj["metadata"][k] for k in ("namespace", "uid", "creationTimestamp")}
        obj["metadata"].update(kept, resourceVersion=self._bump())
        stored.obj = obj
        self._managed_fields(
            stored, call.query.get("fieldManager", "unknown"), "Update", obj["apiVersion"]
        )
        return copy.deepcopy(obj)

    def _delete(self, resource: str, namespace: str, name: str) -> dict[str, Any]:
        stored = self.store.pop((resource, namespace, name), None)
        if stored is None:
            raise ApiFailure(
                404, "NotFound", f'{resource} "{name}" not found', {"name": name, "kind": resource}
            )
        self._bump()
        uid = stored.obj["metadata"]["uid"]
        # The garbage collector removes dependents of a deleted owner (here: at once).
        for key, dependent in list(self.store.items()):
            owners = dependent.obj["metadata"].get("ownerReferences") or []
            if key[1] == namespace and any(o.get("uid") == uid for o in owners):
                del self.store[key]
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {"name": name, "kind": resource, "uid": uid},
        }


@contextmanager
def serve(namespaces: tuple[str, ...] = ("monitoring",)) -> Iterator[FakeKubeApi]:
    api = FakeKubeApi()
    for namespace in namespaces:
        api.add_namespace(namespace)
    api.start()
    try:
        yield api
    finally:
        api.stop()
