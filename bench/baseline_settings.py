"""Settings of the baseline server: the production settings with the baseline's urls."""

from edgeserver.settings import *  # noqa: F403

ROOT_URLCONF = "bench.baseline_urls"
