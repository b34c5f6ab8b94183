"""The server's own Prometheus metrics: HTTP requests here, each app's in its own module.

Under gunicorn every worker and the monitor write their samples to files in
PROMETHEUS_MULTIPROC_DIR (prepared by the gunicorn master before anything imports
prometheus_client), and `GET /metrics` adds them up, so a scrape sees the whole server
whichever worker answers it. Outside gunicorn (tests, commands) the default in-process
registry is used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

HTTP_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

HTTP_REQUESTS = Counter(
    "ems_http_requests_total",
    "HTTP requests served, by route and status",
    ["route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "ems_http_request_duration_seconds",
    "Time to serve an HTTP request, by route",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
LEADERSHIP_CHANGES = Counter(
    "ems_leadership_changes_total",
    "Times this server's device monitor became the leader or stopped being it",
    ["to"],
)
# Collectors that read their figures at scrape time (e.g. the last Kubernetes sync, from
# the database); apps register theirs at start (AppConfig.ready).
_collectors: list[Collector] = []
# Parts of the page an app renders itself in the text format, after the collectors' (see
# `family_text`): families of one series per device, where prometheus_client's checks
# and escaping per sample would be most of a scrape (bench/metrics_scrape.py, 10,000
# devices on a loaded 2-core machine: about 1 s through prometheus_client, 0.35 s so).
_text_sections: list[Callable[[], str]] = []


def register_collector(collector: Collector) -> None:
    if all(type(c) is not type(collector) for c in _collectors):
        _collectors.append(collector)


def register_text_section(render: Callable[[], str]) -> None:
    """`render()` returns whole metric families in the text format 0.0.4, none of which
    any collector also exports."""
    if render not in _text_sections:
        _text_sections.append(render)


def _escaped(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def label_pairs(**labels: str) -> str:
    """`name="value",...`, the values escaped as the text format wants them."""
    return ",".join(f'{name}="{_escaped(value)}"' for name, value in labels.items())


def family_text(
    name: str, documentation: str, samples: Iterable[tuple[str, float]], kind: str = "gauge"
) -> str:
    """One metric family in the text format; `samples` are (label_pairs(...), value)."""
    lines = [f"# HELP {name} {documentation}", f"# TYPE {name} {kind}"]
    lines += [f"{name}{{{labels}}} {float(value)!r}" for labels, value in samples]
    return "\n".join(lines) + "\n"


class BuildCollector(Collector):
    def collect(self) -> Iterator:
        from django.conf import settings

        info = InfoMetricFamily("ems_build", "Version of the running server")
        info.add_metric([], {"version": settings.VERSION})
        yield info


class LeaderCollector(Collector):
    """Whether this server leads, as its device monitor last wrote it (runtime dir)."""

    def collect(self) -> Iterator:
        from edgeserver.runstate import LeaderState

        gauge = GaugeMetricFamily(
            "ems_leader", "1 while this server is the leader and does the singleton duties"
        )
        gauge.add_metric([], 1.0 if LeaderState.of_this_server().read() else 0.0)
        yield gauge


def exposition() -> tuple[bytes, str]:
    """The text of `GET /metrics` and its content type."""
    from django.conf import settings

    if settings.PROMETHEUS_MULTIPROC_DIR:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = CollectorRegistry()
        registry.register(_DefaultRegistryView())
    registry.register(BuildCollector())
    registry.register(LeaderCollector())
    for collector in _collectors:
        registry.register(collector)
    sections = "".join(render() for render in _text_sections)
    return generate_latest(registry) + sections.encode(), CONTENT_TYPE_LATEST


class _DefaultRegistryView(Collector):
    """The in-process registry, for single-process runs."""

    def collect(self) -> Iterator:
        yield from REGISTRY.collect()


def observe_request(*, route: str, method: str, status: int, seconds: float) -> None:
    method = method if method in HTTP_METHODS else "other"
    HTTP_REQUESTS.labels(route=route, method=method, status=str(status)).inc()
    HTTP_DURATION.labels(route=route, method=method).observe(seconds)
