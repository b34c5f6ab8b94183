"""Settings of Edge Metrics Server: every value is read here, once, through django-environ.

Each setting is documented with its default in README.md ("Settings").
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from importlib import metadata
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from edgeserver.logging import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()


def _choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env.str(name, default=default).strip().lower()
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value


def _positive(name: str, value: float) -> float:
    if value <= 0:
        raise ImproperlyConfigured(f"{name} must be greater than 0; got {value}")
    return value


def _networks(name: str, default: str) -> list[str]:
    """A comma-separated list of CIDRs, in canonical form (host bits are dropped)."""
    networks = []
    for text in env.list(name, default=default.split(",") if default else []):
        if not text.strip():
            continue
        try:
            networks.append(str(ipaddress.ip_network(text.strip(), strict=False)))
        except ValueError as exc:
            raise ImproperlyConfigured(f"{name}: {text!r} is not a network: {exc}") from None
    return networks


def _not_writable(directory: Path) -> str:
    return (
        f"{directory} is not writable by uid {os.getuid()} (gid {os.getgid()}); the server "
        f"keeps its database and generated secret key there. Give the directory to that "
        f"user (chown {os.getuid()}:{os.getgid()} {directory}; in the container image: "
        "chown 1000:1000 on the host directory you mount at /data), or set DB_PATH and "
        "SECRET_KEY"
    )


def _persistent_secret_key(path: Path) -> str:
    """Generate a key once and keep it beside the database so sessions survive restarts.

    Several gunicorn workers may start at once: the key is written to a private temporary
    file and hard-linked into place, so exactly one key ever becomes visible.
    """
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    except PermissionError:
        raise ImproperlyConfigured(_not_writable(path.parent)) from None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except PermissionError:
        raise ImproperlyConfigured(_not_writable(path.parent)) from None
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(50))
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text().strip()


try:
    VERSION = metadata.version("edge-metrics-server")
except metadata.PackageNotFoundError as exc:  # running from a tree that was never installed
    raise ImproperlyConfigured(
        "edge-metrics-server is not installed; run `make run` or `pip install -e .`"
    ) from exc

# --- Core -----------------------------------------------------------------------------
PORT = env.int("PORT", default=8081)
SERVER_URL = env.str("SERVER_URL", default=f"http://localhost:{PORT}").rstrip("/")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["*"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
LOG_FORMAT = _choice("LOG_FORMAT", "text", ("text", "json"))
WEB_CONCURRENCY = env.int("WEB_CONCURRENCY", default=2)
GUNICORN_THREADS = env.int("GUNICORN_THREADS", default=8)
# Seconds a stopping server gives requests in progress, then the device monitor half as
# long: together under the 10 s a `docker stop` waits before it kills.
GRACEFUL_TIMEOUT = int(_positive("GRACEFUL_TIMEOUT", env.int("GRACEFUL_TIMEOUT", default=6)))

DB_PATH = Path(env.str("DB_PATH", default=str(BASE_DIR / "config.db"))).absolute()
DATABASE_URL = env.str("DATABASE_URL", default="")

SECRET_KEY = env.str("SECRET_KEY", default="") or _persistent_secret_key(
    DB_PATH.parent / ".secret_key"
)

# --- Who may do what ------------------------------------------------------------------
AUTH_MODE = _choice("AUTH_MODE", "token", ("token", "open"))
API_TOKENS = [token for token in env.list("API_TOKENS", default=[]) if token]
DEVICE_REGISTRATION = _choice("DEVICE_REGISTRATION", "open", ("open", "token"))
ENROLLMENT_TOKENS = [token for token in env.list("ENROLLMENT_TOKENS", default=[]) if token]

# --- Device runtime -------------------------------------------------------------------
# Seconds unless said otherwise. See README.md ("Device runtime").
PROBE_TIMEOUT = _positive("PROBE_TIMEOUT", env.float("PROBE_TIMEOUT", default=2.0))
# Device calls in flight at once (asyncio, no thread each): a round of 10,000 devices with
# 1,000 dead ones then takes one PROBE_TIMEOUT, the dead ones waiting side by side.
PROBE_CONCURRENCY = int(
    _positive("PROBE_CONCURRENCY", env.int("PROBE_CONCURRENCY", default=256))
)
MONITOR_INTERVAL = _positive("MONITOR_INTERVAL", env.float("MONITOR_INTERVAL", default=15.0))
FAILURE_THRESHOLD = int(_positive("FAILURE_THRESHOLD", env.int("FAILURE_THRESHOLD", default=1)))
RELOAD_TIMEOUT = _positive("RELOAD_TIMEOUT", env.float("RELOAD_TIMEOUT", default=2.0))
PROXY_TIMEOUT = _positive("PROXY_TIMEOUT", env.float("PROXY_TIMEOUT", default=5.0))
DRIFT_CHECK_INTERVAL = _positive(
    "DRIFT_CHECK_INTERVAL", env.float("DRIFT_CHECK_INTERVAL", default=300.0)
)
DEFAULT_DEVICE_ALLOWED_NETWORKS = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "fc00::/7",
]
DEVICE_ALLOWED_NETWORKS = _networks(
    "DEVICE_ALLOWED_NETWORKS", ",".join(DEFAULT_DEVICE_ALLOWED_NETWORKS)
)
TRUSTED_PROXIES = _networks("TRUSTED_PROXIES", "")
ADOPT_OBSERVED_IP = env.bool("ADOPT_OBSERVED_IP", default=True)
# Seconds between stores of where devices called GET /config/{id} from (0 = in the request).
CONTACT_FLUSH_INTERVAL = env.float("CONTACT_FLUSH_INTERVAL", default=1.0)
# gunicorn's master runs one `manage.py monitor_devices` beside the workers; false when the
# monitor runs elsewhere (another Deployment, or a second replica of the web tier).
MONITOR_ENABLED = env.bool("MONITOR_ENABLED", default=True)
# Dotted paths of zero-argument factories returning more monitor listeners
# (devices.monitor), beside those the apps register (the Kubernetes auto-sync, which does
# nothing unless K8S_AUTO_SYNC=true).
MONITOR_LISTENERS = [path for path in env.list("MONITOR_LISTENERS", default=[]) if path]
# Seconds between the leader's checks that every device is served what its layers give
# (profiles): heals a profile write whose re-layering a crash cut short.
PROFILE_RECONCILE_INTERVAL = _positive(
    "PROFILE_RECONCILE_INTERVAL", env.float("PROFILE_RECONCILE_INTERVAL", default=300.0)
)

# --- Replicas ---------------------------------------------------------------------------
# Which replica runs the singleton duties (probe rounds, drift checks, pending reloads,
# automatic syncs): auto = a Kubernetes Lease in a pod, else the database (a PostgreSQL
# advisory lock; a lock file beside an SQLite database); none = this server always leads.
LEADER_ELECTION = _choice("LEADER_ELECTION", "auto", ("auto", "kubernetes", "database", "none"))
LEADER_LEASE_DURATION = _positive(
    "LEADER_LEASE_DURATION", env.float("LEADER_LEASE_DURATION", default=15.0)
)
LEADER_RENEW_DEADLINE = _positive(
    "LEADER_RENEW_DEADLINE", env.float("LEADER_RENEW_DEADLINE", default=10.0)
)
LEADER_RETRY_PERIOD = _positive(
    "LEADER_RETRY_PERIOD", env.float("LEADER_RETRY_PERIOD", default=2.0)
)
if not LEADER_RETRY_PERIOD < LEADER_RENEW_DEADLINE < LEADER_LEASE_DURATION:
    raise ImproperlyConfigured(
        "LEADER_RETRY_PERIOD < LEADER_RENEW_DEADLINE < LEADER_LEASE_DURATION must hold: a "
        "leader stops its duties before what it holds can expire; got "
        f"{LEADER_RETRY_PERIOD}, {LEADER_RENEW_DEADLINE}, {LEADER_LEASE_DURATION}"
    )
# This replica's name as leader (the manifests pass the pod's); else host and server pid.
POD_NAME = env.str("POD_NAME", default="").strip()
# Where a running server keeps what its processes share (leadership, draining); the
# gunicorn master makes a fresh temporary directory when this is empty. `python -m
# edgeserver.drain` (the manifests' preStop) finds the server through it.
RUNTIME_DIR = env.str("RUNTIME_DIR", default="").strip()

# --- Kubernetes bridge ------------------------------------------------------------------
# Namespace of automatic syncs, the command's default and the routes' default `?namespace=`.
K8S_NAMESPACE = env.str("K8S_NAMESPACE", default="monitoring").strip()
if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", K8S_NAMESPACE):
    raise ImproperlyConfigured(
        f"K8S_NAMESPACE must be a Kubernetes namespace name (RFC 1123 label); got {K8S_NAMESPACE!r}"
    )
# Which endpoint kinds are written per device: Endpoints (what the Prometheus Operator reads
# by default), EndpointSlices, or both.
K8S_ENDPOINTS_MODE = _choice("K8S_ENDPOINTS_MODE", "both", ("both", "endpointslice", "endpoints"))
# What happens to the objects of a device that is not healthy: removed, or kept not-ready.
K8S_UNHEALTHY_POLICY = _choice("K8S_UNHEALTHY_POLICY", "delete", ("delete", "not-ready"))
K8S_AUTO_SYNC = env.bool("K8S_AUTO_SYNC", default=False)
K8S_SYNC_INTERVAL = env.int("K8S_SYNC_INTERVAL", default=300)
# Seconds one Kubernetes API call may take before it counts as failed (timeout).
K8S_REQUEST_TIMEOUT = env.float("K8S_REQUEST_TIMEOUT", default=10.0)
# Kubernetes writes a sync has in flight at once (devices are applied side by side).
K8S_WRITE_CONCURRENCY = int(
    _positive("K8S_WRITE_CONCURRENCY", env.int("K8S_WRITE_CONCURRENCY", default=16))
)
# Kubeconfig file(s), `:`-separated like kubectl's; empty = in-cluster, else ~/.kube/config.
KUBECONFIG = env.str("KUBECONFIG", default="")
if K8S_SYNC_INTERVAL < 1 or K8S_REQUEST_TIMEOUT <= 0:
    raise ImproperlyConfigured("K8S_SYNC_INTERVAL and K8S_REQUEST_TIMEOUT must be positive")

# --- Admin ------------------------------------------------------------------------------
# Seconds between refreshes of the status cells of the admin's device list (htmx).
ADMIN_REFRESH_INTERVAL = int(
    _positive("ADMIN_REFRESH_INTERVAL", env.int("ADMIN_REFRESH_INTERVAL", default=15))
)

# --- Django ---------------------------------------------------------------------------
INSTALLED_APPS = [
    # The project itself: its management commands (prepare_server) and templates.
    "edgeserver",
    "whitenoise.runserver_nostatic",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    # Serves htmx as a static file: the admin's live parts, no hand-written JavaScript.
    "django_htmx",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "users",
    "devices",
    "k8sbridge",
    "rollouts",
]

MIDDLEWARE = [
    "edgeserver.middleware.RequestObservabilityMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "edgeserver.urls"
WSGI_APPLICATION = "edgeserver.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # edgeserver/templates is found as the edgeserver app's: listed here too, the
        # templates that extend the admin's (index.html, base_site.html) were found twice
        # and rendered their content twice.
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

if DATABASE_URL:
    DATABASES = {"default": env.db_url_config(DATABASE_URL)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DB_PATH,
            "OPTIONS": {
                # Several gunicorn workers write to one file: WAL lets readers run beside the
                # writer, IMMEDIATE takes the write lock at BEGIN so read-then-write
                # transactions queue instead of failing with "database is locked".
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }
# Each gunicorn thread keeps its connection: opening one (and, for SQLite, running the
# PRAGMAs) on every request would cost more than the query itself.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=300)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
# Pages only ever link the hashed names: the plain copies would be the assets once more.
WHITENOISE_KEEP_ONLY_HASHED_FILES = True

# A config body is small; anything larger is refused with 413 before it is parsed.
MAX_BODY_BYTES = 256 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_BODY_BYTES

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "users.auth.BearerTokenAuthentication",
        "users.auth.StaffSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["users.permissions.IsOperator"],
    "DEFAULT_PARSER_CLASSES": ["edgeserver.api.parsers.JSONObjectParser"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "edgeserver.api.parsers.JSONBodyNegotiation",
    "EXCEPTION_HANDLER": "edgeserver.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # `?format=` is a parameter of our own routes (manifests), not a renderer switch.
    "URL_FORMAT_OVERRIDE": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Edge Metrics Server API",
    "DESCRIPTION": (
        "Configuration, health and Kubernetes discovery for a fleet of edge metrics "
        "exporters. Operator routes take `Authorization: Bearer <token>`; the device "
        "routes (`GET`/`PUT /config/{id}`) follow DEVICE_REGISTRATION."
    ),
    "VERSION": VERSION,
    "OAS_VERSION": "3.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "PREPROCESSING_HOOKS": ["edgeserver.api.schema.without_trailing_slash"],
    # Enums stay inline: many responses have their own small `status` vocabulary, and
    # extracting them into shared components only produces colliding names.
    "POSTPROCESSING_HOOKS": [
        "devices.api.schema.device_id_parameters",
        "edgeserver.api.schema.storable_request_bodies",
        "edgeserver.api.schema.metrics_operation",
    ],
}

# --- Observability ------------------------------------------------------------------
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# Where gunicorn workers and the monitor share metric samples; the gunicorn master makes
# a fresh temporary directory when this is empty.
PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default="")

LOGGING = logging_config(level=LOG_LEVEL, json_lines=LOG_FORMAT == "json")
