"""Profiles in a real browser (Debian's chromium) against gunicorn: the operator ticks a
metric, previews what the save changes, saves, and the devices are served it."""

from __future__ import annotations

import pytest
import requests

from tests.support.browser import (
    HEIGHT,
    WIDTH,
    PageErrors,
    chromium,
    needs_browser,
    screenshot,
)
from tests.support.gunicorn import run_server

pytestmark = [
    pytest.mark.e2e,
    needs_browser,
]

PASSWORD = "ops-pw-for-tests"
SEED = """
from django.utils import timezone
from devices.models import Device, DeviceHealth
now = timezone.now()
for i in range(12):
    device = Device.objects.create(
        device_id=f"orin-{i:02d}", device_type="jetson_orin" if i % 3 else "raspberry_pi",
        labels={"site": "lab-3" if i % 2 else "lab-1"}, port=9102, reload_port=9101,
        extra_config={"metrics": {"gpu_power": False, "cpu_temp": True}},
        created_at=now, updated_at=now)
    DeviceHealth.objects.create(device=device)
"""


def test_an_operator_previews_and_saves_a_profile(tmp_path):
    env = {"MONITOR_ENABLED": "false", "DJANGO_SUPERUSER_PASSWORD": PASSWORD}
    with run_server(tmp_path, env=env) as server, chromium() as browser:
        assert server.manage("shell", "-c", SEED).returncode == 0
        made = server.manage(
            "createsuperuser", "--noinput", "--username", "ops", "--email", "ops@example.com"
        )
        assert made.returncode == 0, made.stderr
        page = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT}).new_page()
        page.goto(server.url + "/admin/login/")
        page.fill("#id_username", "ops")
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        page.wait_for_selector("#content")
        # Watched from here: the login page's favicon.ico is the browser's own 404.
        errors = PageErrors()
        errors.watch(page)

        page.goto(server.url + "/admin/devices/profile/add/")
        page.fill("#id_name", "gpu-lab3")
        page.fill("#id_selector", "site=lab-3,device_type=jetson_orin")
        page.fill("#id_priority", "10")
        page.fill("#id_config", '{"interval": 5}')
        # The catalogue, sorted: cpu_temp, gpu_power.
        page.check("input[name=metric_set_1]")
        page.check("input[name=metric_on_1]")
        page.click("#profile-preview-button")
        summary = page.wait_for_selector("#preview-summary")
        # orin-01, -05, -07, -11: lab-3 and jetson_orin.
        assert "4 devices" in summary.inner_text()
        assert page.locator("#preview-changes tbody tr").count() == 8
        screenshot(page, "admin-profile-preview", full_page=True)
        assert (
            requests.get(f"{server.url}/config/orin-01", timeout=5).json().get("interval") is None
        )

        page.click("input[name=_save]")
        page.wait_for_selector(".messagelist")
        served = requests.get(f"{server.url}/config/orin-01", timeout=5).json()
        assert served["interval"] == 5 and served["metrics"]["gpu_power"] is True
        assert "interval" not in requests.get(f"{server.url}/config/orin-02", timeout=5).json()

        page.goto(server.url + "/admin/devices/device/orin-01/_metrics/")
        row = page.locator("#device-metrics tr", has_text="gpu_power")
        assert "profile gpu-lab3 v1" in row.inner_text()
        assert errors.messages == []
