#!/usr/bin/env bash
# Container entrypoint. For the server (the image's default command, gunicorn ...), bring
# the database schema up to date first, then become gunicorn, so that it is PID 1 and gets
# the stop signal; gunicorn's master starts the workers and the single device monitor.
# Any other command runs as given, e.g.
#   docker run --rm -v ems-data:/data edge-metrics-server:VERSION python manage.py create_api_token --name me

set -euo pipefail

if [[ $# -eq 0 ]]; then
    set -- gunicorn --config /app/gunicorn.conf.py
fi
if [[ $1 == gunicorn ]]; then
    python -m django migrate --noinput
fi
exec "$@"
