# Edge Metrics Server image: dependencies are installed into a virtualenv in a builder
# stage; the runtime stage gets that virtualenv, the collected static files and nothing
# else, and runs as uid/gid 1000 with a read-only root filesystem (writable: /data, /tmp).
# Build with scripts/build.sh (Docker 23+, BuildKit).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
# The runtime virtualenv has no pip or setuptools: the builder's pip installs into it.
RUN python -m venv --without-pip /opt/venv
WORKDIR /src
# The dependencies alone first, so a code change reuses this layer: exactly the pinned,
# hashed set of requirements.lock (`make lock` refreshes it), nothing resolved today.
COPY requirements.lock ./
RUN pip --python /opt/venv/bin/python install --require-hashes --no-deps \
        --requirement requirements.lock
# Then the project itself, as a package: the server reads its version from the metadata.
COPY pyproject.toml README.md ./
COPY edgeserver ./edgeserver
COPY devices ./devices
COPY users ./users
COPY k8sbridge ./k8sbridge
COPY rollouts ./rollouts
# Static files are collected here, because the runtime's root filesystem is read-only (a
# throwaway key: no secret in the image). Then what the runtime never reads goes: the
# Swagger UI copies only collectstatic reads (the assets are in the image once) and the
# Kubernetes client's asyncio twin, `kubernetes.aio`, which nothing imports (68 MB).
RUN pip --python /opt/venv/bin/python install --no-deps . \
    && SECRET_KEY=collectstatic-only STATIC_ROOT=/opt/staticfiles \
        /opt/venv/bin/python -m django collectstatic --noinput --verbosity 0 \
        --settings edgeserver.settings --ignore "redoc*" \
    && rm -rf /opt/venv/lib/python3.*/site-packages/drf_spectacular_sidecar/static \
        /opt/venv/lib/python3.*/site-packages/kubernetes/aio \
    && /opt/venv/bin/python -m compileall -q /opt/venv

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="edge-metrics-server" \
      org.opencontainers.image.description="Configuration, health and Kubernetes discovery server for a fleet of edge metrics exporters" \
      org.opencontainers.image.licenses="MIT"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=edgeserver.settings \
    PORT=8081 \
    DB_PATH=/data/config.db \
    STATIC_ROOT=/app/staticfiles
RUN groupadd --gid 1000 app \
    && useradd --uid 1000 --gid 1000 --home-dir /app --no-create-home --shell /usr/sbin/nologin app \
    && install -d -o 1000 -g 1000 -m 0750 /data
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /opt/staticfiles /app/staticfiles
WORKDIR /app
COPY --chmod=0755 scripts/docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
COPY manage.py ./
# gunicorn's config is the installed package's.
RUN ln -s "$(python -c 'import edgeserver, pathlib; print(pathlib.Path(edgeserver.__file__).with_name("gunicorn.conf.py"))')" gunicorn.conf.py
USER 1000:1000
VOLUME ["/data"]
EXPOSE 8081
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import json, os, sys, urllib.request; r = urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8081'), timeout=4); sys.exit(json.load(r).get('status') != 'healthy')"]
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["gunicorn", "--config", "/app/gunicorn.conf.py"]
