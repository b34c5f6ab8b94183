"""Test settings: the production settings, with defaults that keep tests on loopback.

Only defaults are set here; a variable already in the environment wins.
"""

import os

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production")
os.environ.setdefault("DEVICE_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128")

from edgeserver.settings import *  # noqa: F403
from edgeserver.settings import STORAGES

# Templates render without a collectstatic manifest.
STORAGES = {
    **STORAGES,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Serve app static files straight from the apps: no collectstatic directory in tests.
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Tests never reach a developer's real cluster: the bridge's tests point KUBECONFIG at a fake
# API server (tests/support/kube_api.py); everything else sees no Kubernetes configuration.
KUBECONFIG = "/nonexistent/edge-metrics-server-tests/kubeconfig"
# The test client calls from 127.0.0.1, an allowed address: with adoption on, every device an
# anonymous test registers would become a loopback device the server then reloads. Tests of
# adoption turn it on; gunicorn end-to-end tests run with the production default (true).
ADOPT_OBSERVED_IP = False

# In-process tests read the observed address right after a request; the buffered store
# (production's default) has tests of its own.
CONTACT_FLUSH_INTERVAL = 0
