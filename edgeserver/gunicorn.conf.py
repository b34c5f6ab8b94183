"""gunicorn settings: `gunicorn -c edgeserver/gunicorn.conf.py edgeserver.wsgi`.

Values come from edgeserver/settings.py (django-environ), so the container, `make run`
and the tests start the server the same way.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "edgeserver.settings")

from django.conf import settings as django_settings

from edgeserver.gunicorn_hooks import prepare_shared_dirs

prepare_shared_dirs()

bind = [f"0.0.0.0:{django_settings.PORT}"]
wsgi_app = "edgeserver.wsgi:application"
# The application is loaded once, in the master, and the workers fork from it sharing its
# memory (edgeserver/gunicorn_hooks.py freezes it first). A SIGHUP restarts the workers
# with the code the master loaded; deploy new code with a restart.
preload_app = True
worker_class = "gthread"
workers = django_settings.WEB_CONCURRENCY
threads = django_settings.GUNICORN_THREADS
timeout = 60
graceful_timeout = django_settings.GRACEFUL_TIMEOUT
keepalive = 5
# Long enough that a device id over its 253-character limit reaches Django's 400
# invalid_device_id; gunicorn's maximum.
limit_request_line = 8190
accesslog = "-"
errorlog = "-"
loglevel = django_settings.LOG_LEVEL.lower()
logger_class = "edgeserver.gunicorn_hooks.RedactingLogger"
# Several servers (tests, a second checkout) may run on one machine: no shared control socket.
control_socket_disable = True
# Heartbeat files in memory: a slow disk must not make workers look dead.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108

if django_settings.LOG_FORMAT == "json":
    from edgeserver.logging import gunicorn_logging_config

    logconfig_dict = gunicorn_logging_config(level=django_settings.LOG_LEVEL)

on_starting = "edgeserver.gunicorn_hooks.on_starting"
child_exit = "edgeserver.gunicorn_hooks.child_exit"
post_worker_init = "edgeserver.gunicorn_hooks.post_worker_init"
# The master runs exactly one device monitor beside the workers (MONITOR_ENABLED).
when_ready = "edgeserver.gunicorn_hooks.when_ready"
on_reload = "edgeserver.gunicorn_hooks.on_reload"
on_exit = "edgeserver.gunicorn_hooks.on_exit"
