"""What the gunicorn master does once per server start, the device monitor it runs beside
its workers, and its log lines."""

from __future__ import annotations

import email.utils
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from gunicorn import util
from gunicorn.glogging import Logger

from edgeserver.logging import RedactSecrets

# gunicorn's default access_log_format (Apache's combined format).
COMBINED_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'


class RedactingLogger(Logger):
    """gunicorn's logger: every line (access and error) goes through the one redaction
    filter that Django's handlers have too, and each access record carries the request id
    of its response (a field in JSON logs).

    With the default (combined) format, an access line is built from the nine values that
    format names: gunicorn's own `atoms` also copies every request header, response header
    and environ variable into a dict for each request, which made the access line a third
    of a worker's CPU on `GET /config/{id}`."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        self._second = -1
        self._stamp = ""
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                if not any(isinstance(f, RedactSecrets) for f in handler.filters):
                    handler.addFilter(RedactSecrets())

    def now(self) -> str:
        """The access line's time, formatted once per second."""
        second = int(time.time())
        if second != self._second:
            self._stamp, self._second = super().now(), second
        return self._stamp

    def access(self, resp, req, environ, request_time) -> None:
        if not self.access_log_enabled:
            return
        if self.cfg.access_log_format == COMBINED_FORMAT:
            atoms = self._combined_atoms(resp, environ)
        else:
            atoms = self.atoms_wrapper_class(self.atoms(resp, req, environ, request_time))
        request_id = next(
            (value for name, value in resp.headers if name.lower() == "x-request-id"), "-"
        )
        self.access_log.info(self.cfg.access_log_format, atoms, extra={"request_id": request_id})

    def _combined_atoms(self, resp, environ) -> dict[str, object]:
        """Exactly what gunicorn's atoms give the combined format's names."""
        status = resp.status
        if isinstance(status, str):
            status = status.split(None, 1)[0]
        sent = getattr(resp, "sent", None)
        return {
            "h": environ.get("REMOTE_ADDR", "-"),
            "l": "-",
            "u": (self._get_user(environ) if "HTTP_AUTHORIZATION" in environ else None) or "-",
            "t": self.now(),
            "r": f"{environ['REQUEST_METHOD']} {environ['RAW_URI']} {environ['SERVER_PROTOCOL']}",
            "s": status,
            "b": (sent is not None and str(sent)) or "-",
            "f": environ.get("HTTP_REFERER", "-"),
            "a": environ.get("HTTP_USER_AGENT", "-"),
        }


def _prepare_metrics_dir() -> None:
    """Give workers and the monitor one fresh directory for their metric samples.

    Must run before anything imports prometheus_client, which reads the variable once.
    """
    from django.conf import settings

    directory = settings.PROMETHEUS_MULTIPROC_DIR
    if directory:
        os.makedirs(directory, exist_ok=True)
        for name in os.listdir(directory):  # samples of a previous run would be added in
            if name.endswith(".db"):
                os.unlink(os.path.join(directory, name))
    else:
        directory = tempfile.mkdtemp(prefix="ems-metrics-")
        settings.OWN_METRICS_DIR = directory
    settings.PROMETHEUS_MULTIPROC_DIR = directory
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory


def _prepare_runtime_dir() -> None:
    """One directory the master, its workers and its monitor share (edgeserver/runstate.py):
    RUNTIME_DIR, cleared of a previous run's marks, or a fresh temporary one."""
    from django.conf import settings

    from edgeserver import runstate

    directory = settings.RUNTIME_DIR
    if directory:
        runstate.prepare(Path(directory))
    else:
        directory = tempfile.mkdtemp(prefix="ems-run-")
        settings.OWN_RUNTIME_DIR = directory
    settings.RUNTIME_DIR = directory
    os.environ["RUNTIME_DIR"] = directory
    runstate.draining.cache_clear()


_prepared_in: int | None = None


def prepare_shared_dirs() -> None:
    """The metrics and runtime directories, once per master: from gunicorn.conf.py, which
    gunicorn reads before it loads the application (preload_app), so that nothing imports
    prometheus_client before PROMETHEUS_MULTIPROC_DIR is set. A SIGHUP reads the config
    again in the same master: the directories are kept (live samples are in them)."""
    global _prepared_in
    if _prepared_in == os.getpid():
        return
    _prepare_metrics_dir()
    _prepare_runtime_dir()
    _prepared_in = os.getpid()


def on_starting(server) -> None:
    """Once, in the master, before workers fork: auth announcement, and what the apps do
    at a server start (the bootstrap token)."""
    prepare_shared_dirs()
    import django

    django.setup()
    from django.conf import settings
    from django.db import connections

    from edgeserver.signals import server_starting

    if settings.AUTH_MODE == "open":
        server.log.warning(
            "AUTH_MODE=open: every route, including writes and Kubernetes actions, "
            "is open to anyone who can reach this server"
        )
    announcements = [text for _, text in server_starting.send(sender=None) if text]
    connections.close_all()
    for text in announcements:
        print(text, file=sys.stdout, flush=True)


# What gunicorn itself refuses (a request line over limit_request_line, headers it cannot
# parse, ...) is answered in the contract's error shape instead of its HTML page.
_REFUSALS = {
    400: "bad_request",
    403: "forbidden",
    414: "uri_too_long",
    417: "expectation_failed",
    431: "headers_too_large",
    500: "Internal server error",
    501: "not_implemented",
}


def write_json_error(sock, status_int: int, reason: str, mesg: str) -> None:
    from edgeserver.api.errors import error_body
    from edgeserver.logging import redact

    error = _REFUSALS.get(status_int, "bad_request")
    body = json.dumps(error_body(error, redact(mesg) or reason)).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


_date = (-1, "")


def _http_date_per_second(timestamp: float | None = None) -> str:
    """gunicorn's `Date` header, formatted once per second instead of for every answer."""
    global _date
    if timestamp is not None:
        return email.utils.formatdate(timestamp, usegmt=True)
    second = int(time.time())
    if _date[0] != second:
        _date = (second, email.utils.formatdate(second, usegmt=True))
    return _date[1]


def post_worker_init(worker) -> None:
    """A worker has loaded the application: gunicorn's own refusals answer in JSON; load
    the rest of what requests use (the URLconf and every view module it names, otherwise
    imported by the first requests), then move everything loaded so far out of the
    garbage collector's reach. Without this, each full collection walks the ~100,000
    objects of Django, DRF and the Kubernetes client and stops every request thread of
    the worker for ~70 ms, often enough to set the tail latency of the fleet's config
    fetches (bench/README.md); with it a full collection takes a few milliseconds."""
    from django.urls import get_resolver

    # gunicorn's workers write their refusals through this one function.
    util.write_error = write_json_error
    util.http_date = _http_date_per_second
    get_resolver().url_patterns  # noqa: B018  (importing is the point)
    gc.collect()
    gc.freeze()


def child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


class MonitorSupervisor:
    """Runs `python -m django monitor_devices` as one child of the gunicorn master,
    restarts it when it dies and stops it when the master exits.

    The master exists once per server however many workers it forks, so the monitor does
    too; in a worker it would probe every device once per worker. The child is passed the
    master's pid and exits by itself if the master disappears without calling on_exit.
    """

    WATCH_INTERVAL = 1.0
    # A monitor that dies within this long of starting is restarted with growing delays.
    STEADY_AFTER = 30.0
    MAX_RESTART_DELAY = 30.0

    def __init__(self, log: Logger, stop_timeout: float) -> None:
        self.log = log
        self.stop_timeout = stop_timeout
        self.process: subprocess.Popen | None = None
        self._started_at = 0.0
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def start(self) -> None:
        with self._lock:
            self._spawn()
        threading.Thread(target=self._watch, name="monitor-supervisor", daemon=True).start()

    def restart(self) -> None:
        """After SIGHUP the workers restart (with the application the master loaded), and
        so does the monitor (which loads it anew)."""
        with self._lock:
            if self._stopping.is_set():
                return
            self._terminate()
            self._spawn()

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            self._terminate()

    def hand_over(self) -> None:
        """The server is asked to stop: tell the monitor at once (it hands the leadership
        over), without waiting; `stop` later waits for it, after the workers."""
        self._stopping.set()
        process = self.process
        if process is not None and process.poll() is None:
            process.terminate()

    def _spawn(self) -> None:
        # `-m django` finds the settings through DJANGO_SETTINGS_MODULE (gunicorn.conf.py
        # sets it), so it works whether or not a manage.py sits beside the package.
        self.process = subprocess.Popen(
            [sys.executable, "-m", "django", "monitor_devices", "--parent-pid", str(os.getpid())],
            stdin=subprocess.DEVNULL,
        )
        self._started_at = time.monotonic()
        self.log.info("Started the device monitor (pid %s)", self.process.pid)

    def _terminate(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            self.log.warning("The device monitor (pid %s) did not stop; killing it", process.pid)
            process.kill()
            process.wait()

    def _watch(self) -> None:
        failures = 0
        while not self._stopping.wait(self.WATCH_INTERVAL):
            with self._lock:
                process = self.process
                # gunicorn reaps every child; poll() then reports 0, which is enough here.
                if process is None or process.poll() is None:
                    continue
                lived = time.monotonic() - self._started_at
            failures = failures + 1 if lived < self.STEADY_AFTER else 0
            delay = min(self.MAX_RESTART_DELAY, 2.0 ** (failures - 1)) if failures else 1.0
            self.log.warning(
                "The device monitor (pid %s) exited; restarting it in %.0fs", process.pid, delay
            )
            if self._stopping.wait(delay):
                return
            with self._lock:
                if self.process is process and not self._stopping.is_set():
                    self._spawn()


_monitor: MonitorSupervisor | None = None


def when_ready(server) -> None:
    """Once the master listens: start the one device monitor (unless MONITOR_ENABLED=false)."""
    global _monitor
    from django.conf import settings

    if not settings.MONITOR_ENABLED:
        server.log.info(
            "MONITOR_ENABLED=false: this server runs no device monitor; run "
            "`python manage.py monitor_devices` once somewhere else"
        )
        return
    # Asked to stop after the workers, it finishes its round or is killed: a round cut
    # short loses only observations the next round makes again.
    _monitor = MonitorSupervisor(server.log, stop_timeout=settings.GRACEFUL_TIMEOUT / 2)
    _monitor.start()
    _hand_over_on_shutdown(server, _monitor)
    _freeze_before_forking()


def _freeze_before_forking() -> None:
    """The application is loaded in the master (preload_app): load what requests use
    (the URLconf and every view module it names) and move it all out of the garbage
    collector's reach before the workers fork, so the workers share those pages with the
    master instead of copying them (a collection would write to every object's header)."""
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018  (importing is the point)
    gc.collect()
    gc.freeze()


def _hand_over_on_shutdown(server, monitor: MonitorSupervisor) -> None:
    """gunicorn has no hook at the start of a shutdown (on_exit runs once the workers
    have finished, up to graceful_timeout later): its signal handlers are wrapped so that
    SIGTERM, SIGINT or SIGQUIT reach the monitor first and another replica takes the
    leadership over at once."""
    for name in ("handle_term", "handle_int", "handle_quit"):
        handler = getattr(server, name)

        def wrapped(handler=handler) -> None:
            monitor.hand_over()
            handler()

        setattr(server, name, wrapped)


def on_reload(server) -> None:
    if _monitor is not None:
        _monitor.restart()


def on_exit(server) -> None:
    if _monitor is not None:
        _monitor.stop()
    from django.conf import settings

    for own in (
        getattr(settings, "OWN_METRICS_DIR", None),
        getattr(settings, "OWN_RUNTIME_DIR", None),
    ):
        if own:
            shutil.rmtree(own, ignore_errors=True)
