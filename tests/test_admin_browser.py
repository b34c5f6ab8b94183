"""The admin as operators use it: a real browser (Debian's chromium) against gunicorn,
with hundreds of stored devices and a few real exporters and a fake Kubernetes API.

One server and one browser for the whole module; each test opens its own page. Nothing
here is timed: waits are for what the page shows.
"""

from __future__ import annotations

import csv
import io
import re
from urllib.parse import quote

import pytest
import requests

from tests.support.admin_fleet import HOSTILE_ERROR, HOSTILE_ID, HOSTILE_VALUE
from tests.support.browser import (
    HEIGHT,
    WIDTH,
    PageErrors,
    background_luminance,
    chromium,
    chromium_available,
    horizontal_overflow,
    screenshot,
)
from tests.support.exporters import FakeExporter, Reply, closed_port
from tests.support.gunicorn import run_server
from tests.support.kube_api import serve

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not chromium_available(), reason="needs /usr/bin/chromium (apt-get)"),
]

FLEET = 400
PASSWORD = "ops-pw-for-tests"
LIST = "/admin/devices/device/"


def _admin_quote(device_id: str) -> str:
    from django.contrib.admin.utils import quote as admin_quote

    return quote(admin_quote(device_id))


class Console:
    """The running server, its real exporters and cluster, and a logged-in browser."""

    def __init__(self, server, kube, browser, exporters, tmp) -> None:
        self.server, self.kube, self.browser = server, kube, browser
        self.exporters = exporters
        self.tmp = tmp
        self.states = {}

    def login(self, username: str, password: str):
        if username not in self.states:
            context = self.browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
            page = context.new_page()
            page.goto(self.server.url + "/admin/login/")
            page.fill("#id_username", username)
            page.fill("#id_password", password)
            page.click("input[type=submit]")
            page.wait_for_selector("#content")
            self.states[username] = context.storage_state()
            context.close()
        return self.states[username]

    def page(self, user: str = "ops", *, dark: bool = False):
        password = PASSWORD if user == "ops" else "viewer-pw-for-tests"
        context = self.browser.new_context(
            viewport={"width": WIDTH, "height": HEIGHT},
            storage_state=self.login(user, password),
            color_scheme="dark" if dark else "light",
        )
        page = context.new_page()
        errors = PageErrors()
        errors.watch(page)
        page.on("dialog", lambda dialog: errors.dialogs.append(dialog.message) or dialog.accept())
        page.errors = errors
        return page

    def url(self, path: str) -> str:
        return self.server.url + path


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("admin-browser")
    kubeconfig = tmp / "kubeconfig"
    env = {
        # Stored observations stay as arranged: no monitor probes them.
        "MONITOR_ENABLED": "false",
        # One device goes to the cluster at a documentation address (a cluster refuses
        # loopback ones); no test probes or reloads it.
        "DEVICE_ALLOWED_NETWORKS": "127.0.0.0/8,::1/128,192.0.2.0/24",
        "KUBECONFIG": str(kubeconfig),
        "ADMIN_REFRESH_INTERVAL": "1",
        "DJANGO_SUPERUSER_PASSWORD": PASSWORD,
    }
    exporters = {}
    with serve() as kube, run_server(tmp, env=env) as server:
        kube.write_kubeconfig(kubeconfig)
        seeded = server.manage(
            "shell",
            "-c",
            "from tests.support.admin_fleet import seed_fleet; "
            f"seed_fleet({FLEET}, dead_port={closed_port()})",
        )
        assert seeded.returncode == 0, seeded.stderr
        made = server.manage("createsuperuser", "--noinput", "--username", "ops", "--email", "ops@example.com")
        assert made.returncode == 0, made.stderr
        arranged = server.manage(
            "shell",
            "-c",
            "from devices.models import Device, DeviceHealth; "
            "d = Device.objects.create(device_id='k8s-pub', device_type='jetson_orin', "
            "ip_address='192.0.2.10', port=9102, created_at='2024-01-01T00:00:00Z', "
            "updated_at='2024-01-01T00:00:00Z'); "
            "DeviceHealth.objects.create(device=d, status='healthy')",
        )
        assert arranged.returncode == 0, arranged.stderr
        for name in ("live-healthy", "live-drifted", "live-flaky", "live-moved"):
            exporter = FakeExporter()
            exporters[name] = exporter
            body = {"device_type": "jetson_orin", "port": 9102, "reload_port": exporter.port,
                    "metrics": {"gpu_power": True}, "ip_address": "127.0.0.1"}
            if name == "live-moved":
                body["ip_address"] = "127.0.0.2"
            assert server.request("PUT", f"/config/{name}", json=body).status_code == 200
            exporter.running_config = {k: v for k, v in body.items() if k != "ip_address"}
        exporters["live-drifted"].running_config = {
            **exporters["live-drifted"].running_config,
            "metrics": {"gpu_power": False},
            "local_only": 1,
        }
        # The moved device calls from 127.0.0.1: its observed address.
        server.request("GET", "/config/live-moved", auth=False)
        # Only the real exporters are probed: the stored fleet keeps its observations.
        for name in exporters:
            probed = server.request("GET", f"/devices/{name}/status?refresh=true")
            assert probed.status_code == 200
        with chromium() as browser:
            yield Console(server, kube, browser, exporters, tmp)
        for exporter in exporters.values():
            exporter.close()


def _rows(page) -> list[str]:
    return page.locator("#result_list tbody th.field-device_id").all_inner_texts()


def _check(page, *, name: str | None = None) -> None:
    if name:
        screenshot(page, name)
    assert horizontal_overflow(page) == [], page.url
    assert page.errors.take() == [], page.url


# ---- the device list --------------------------------------------------------------------


def test_device_list_is_dense_fits_1280_and_every_column_sorts(console):
    page = console.page()
    page.goto(console.url(LIST))
    assert len(_rows(page)) == 100
    assert page.locator("#result_list tbody tr").first.bounding_box()["height"] < 40
    _check(page, name="device-list")
    headers = page.locator("#result_list thead th.sortable")
    labels = [t.strip().lower() for t in headers.all_inner_texts()]
    for column in ("status", "last seen", "config in sync", "observed ip", "reload pending",
                   "failures"):
        assert column in labels, labels
    page.click("#result_list thead th.column-status .text a")
    page.wait_for_url(re.compile(r"o=\d"))
    statuses = page.locator("#result_list td.field-status .ems-badge").all_inner_texts()
    assert statuses == sorted(statuses)
    page.click("#result_list thead th.column-failures .text a")
    page.wait_for_url(re.compile(r"o=\d"))
    page.click("#result_list thead th.column-failures .text a")  # descending
    page.wait_for_load_state()
    failures = [int(t) if t.strip().isdigit() else 0
                for t in page.locator("#result_list td.field-failures").all_inner_texts()]
    assert failures == sorted(failures, reverse=True) and failures[0] > 0
    _check(page)


def test_times_are_relative_with_the_exact_time_on_hover_and_errors_are_tooltips(console):
    page = console.page()
    page.goto(console.url(LIST + "?status=unhealthy"))
    badge = page.locator("#result_list td.field-status .ems-badge").first
    assert badge.inner_text() == "unhealthy"
    assert badge.get_attribute("title") == "HTTP 503"
    seen = page.locator("#result_list td.field-last_seen time").first
    assert "ago" in seen.inner_text()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", seen.get_attribute("title"))
    # No error text under the badges: one line per device.
    assert "HTTP 503" not in page.locator("#result_list").inner_text()
    _check(page)


def test_filters_and_csv_export_of_the_filtered_list(console):
    page = console.page()
    page.goto(console.url(LIST))
    page.click("#changelist-filter a[href*='reload_pending=yes']")
    page.wait_for_url(re.compile("reload_pending=yes"))
    pending = _rows(page)
    assert 0 < len(pending) < 100
    assert page.locator("#result_list td.field-reload_pending .ems-flag").count() == len(pending)
    with page.expect_download() as download:
        page.click("#export-csv")
    rows = list(csv.DictReader(io.StringIO(open(download.value.path()).read())))
    assert sorted(r["device_id"] for r in rows) == sorted(pending)
    assert all(r["reload_pending"] == "True" for r in rows)
    page.goto(console.url(LIST + "?failures=10%2B"))
    assert all(int(t) >= 10 for t in
               page.locator("#result_list td.field-failures").all_inner_texts())
    page.goto(console.url(LIST + "?health__config_in_sync__exact=0"))
    assert page.locator("#result_list td.field-config_in_sync .ems-no").count() == len(_rows(page))
    _check(page)


def test_column_chooser_hides_and_shows_columns(console):
    page = console.page()
    page.goto(console.url(LIST))
    page.click("#column-chooser summary")
    page.uncheck("#column-chooser input[value=observed_ip]")
    page.check("#column-chooser input[value=last_checked]")
    page.click("#column-chooser button")
    page.wait_for_load_state()
    assert page.locator("#result_list th.column-observed_ip").count() == 0
    assert page.locator("#result_list th.column-last_checked").count() == 1
    _check(page)
    page.click("#column-chooser summary")
    page.check("#column-chooser input[value=observed_ip]")
    page.uncheck("#column-chooser input[value=last_checked]")
    page.click("#column-chooser button")
    page.wait_for_load_state()
    assert page.locator("#result_list th.column-observed_ip").count() == 1


def test_status_refreshes_in_place_without_reloading_the_page(console):
    flaky = console.exporters["live-flaky"]
    page = console.page()
    page.goto(console.url(LIST + "?q=live-flaky"))
    cell = page.locator("#result_list td.field-status .ems-badge")
    assert cell.inner_text() == "healthy"
    page.evaluate("window.notReloaded = true")
    flaky.set("GET", "/health", Reply(503))
    try:
        assert console.server.request("GET", "/devices/live-flaky/status?refresh=true").json()[
            "status"] == "unhealthy"
        page.wait_for_function(
            "document.querySelector('#result_list td.field-status .ems-badge')"
            ".textContent === 'unhealthy'"
        )
        assert page.evaluate("window.notReloaded") is True
        assert cell.get_attribute("title") == "HTTP 503"
    finally:
        flaky.overrides.clear()
        console.server.request("GET", "/devices/live-flaky/status?refresh=true")
    _check(page)
