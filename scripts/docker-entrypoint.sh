#!/usr/bin/env bash
# Container entrypoint. The data directory must be writable by the user the container runs
# as (uid 1000 by default); then, for the server (the image's default command,
# gunicorn ...) and for any Django management command, the database schema is brought up
# to date first. gunicorn is exec'd, so that it is PID 1 and gets the stop signal; its
# master starts the workers and the single device monitor. Any other command runs as
# given, e.g.
#   docker run --rm -v ems-data:/data edge-metrics-server:VERSION python manage.py create_api_token --name me

set -euo pipefail

if [[ $# -eq 0 ]]; then
    set -- gunicorn --config /app/gunicorn.conf.py
fi

data_dir=$(dirname "${DB_PATH:-/data/config.db}")
if [[ -z ${DATABASE_URL:-} || -z ${SECRET_KEY:-} ]] && ! [[ -w $data_dir && -x $data_dir ]]; then
    uid=$(id -u)
    gid=$(id -g)
    cat >&2 <<MSG
edge-metrics-server: cannot write to $data_dir as uid $uid (gid $gid).
The server keeps its SQLite database and its generated secret key there. If $data_dir is
a directory bind-mounted from the host, give it to this user, on the host:
    sudo chown $uid:$gid /path/on/the/host
or run the container with --user set to the directory's owner, or use a named volume.
MSG
    exit 1
fi

django_command=false
if [[ $1 == python && ${2:-} == manage.py ]] || [[ $1 == python && ${2:-} == -m && ${3:-} == django ]]; then
    django_command=true
fi
if [[ $1 == gunicorn ]] || $django_command; then
    python -m django prepare_server --skip-static >&2  # stdout is the command's alone
fi
exec "$@"
