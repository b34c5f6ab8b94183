"""The admin as operators use it: a real browser (Debian's chromium) against gunicorn,
with hundreds of stored devices and a few real exporters and a fake Kubernetes API.

One server and one browser for the whole module; each test opens its own page. Nothing
here is timed: waits are for what the page shows.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.support.admin_fleet import HOSTILE_ERROR, HOSTILE_ID, HOSTILE_VALUE
from tests.support.browser import (
    HEIGHT,
    WIDTH,
    PageErrors,
    background_luminance,
    chromium,
    horizontal_overflow,
    needs_browser,
    screenshot,
)
from tests.support.exporters import FakeExporter, Reply, closed_port
from tests.support.gunicorn import run_server
from tests.support.kube_api import serve

pytestmark = [
    pytest.mark.e2e,
    needs_browser,
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
        self.contexts = []

    def close_pages(self) -> None:
        """Close what a test opened: an open device list keeps polling the server."""
        for context in self.contexts:
            context.close()
        self.contexts.clear()

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
        self.contexts.append(context)
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
        "ADMIN_REFRESH_INTERVAL": "2",
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
        made = server.manage(
            "createsuperuser", "--noinput", "--username", "ops", "--email", "ops@example.com"
        )
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
            body = {
                "device_type": "jetson_orin",
                "port": 9102,
                "reload_port": exporter.port,
                "metrics": {"gpu_power": True},
                "ip_address": "127.0.0.1",
            }
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


@pytest.fixture(autouse=True)
def _close_pages(request):
    yield
    if "console" in request.fixturenames:
        request.getfixturevalue("console").close_pages()


def _rows(page) -> list[str]:
    return page.locator("#result_list tbody th.field-device_id").all_inner_texts()


def _check(page, *, name: str | None = None, full_page: bool = False) -> None:
    if name:
        screenshot(page, name, full_page=full_page)
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
    for column in (
        "status",
        "last seen",
        "config in sync",
        "observed ip",
        "reload pending",
        "failures",
    ):
        assert column in labels, labels
    sort_by = "#result_list thead th.column-{} .text a"
    page.click(sort_by.format("status"), no_wait_after=True)
    page.wait_for_url(re.compile(r"o=4\.1$"))
    statuses = page.locator("#result_list td.field-status .ems-badge").all_inner_texts()
    assert statuses == sorted(statuses)
    page.click(sort_by.format("status"), no_wait_after=True)
    page.wait_for_url(re.compile(r"o=-4\.1$"))
    assert page.locator("#result_list td.field-status .ems-badge").first.inner_text() == (
        "unreachable"
    )
    page.goto(console.url(LIST))
    page.click(sort_by.format("failures"), no_wait_after=True)
    page.wait_for_url(re.compile(r"o=6\.1$"))
    page.click(sort_by.format("failures"), no_wait_after=True)
    page.wait_for_url(re.compile(r"o=-6\.1$"))  # descending
    failures = [
        int(t) if t.strip().isdigit() else 0
        for t in page.locator("#result_list td.field-failures").all_inner_texts()
    ]
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
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert sorted(r["device_id"] for r in rows) == sorted(pending)
    assert all(r["reload_pending"] == "True" for r in rows)
    page.goto(console.url(LIST + "?failures=10%2B"))
    assert all(
        int(t) >= 10 for t in page.locator("#result_list td.field-failures").all_inner_texts()
    )
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
        assert (
            console.server.request("GET", "/devices/live-flaky/status?refresh=true").json()[
                "status"
            ]
            == "unhealthy"
        )
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


# ---- a device's page ----------------------------------------------------------------------


def _device_page(console, device_id: str, user: str = "ops"):
    page = console.page(user)
    page.goto(console.url(f"{LIST}{_admin_quote(device_id)}/change/"))
    return page


def _press(page, action: str) -> str:
    page.evaluate("document.querySelector('#action-result').replaceChildren()")
    page.click(f"#device-actions button[data-action={action}]")
    outcome = page.locator(f"#action-result .ems-outcome[data-action={action}]")
    outcome.wait_for()
    return outcome.inner_text()


def test_device_page_shows_served_beside_running_config_with_drift_highlighted(console):
    page = _device_page(console, "live-drifted")
    page.locator("#running-config table.ems-compare").wait_for()
    drifted = page.locator("#running-config tr.ems-drifted").evaluate_all(
        "rows => rows.map(r => r.dataset.key)"
    )
    assert drifted == ["metrics"]
    row = page.locator("#running-config tr[data-key=metrics]")
    assert '"gpu_power": true' in row.locator("td").nth(0).inner_text()
    assert '"gpu_power": false' in row.locator("td").nth(1).inner_text()
    assert page.locator("#running-config tr.ems-device-only[data-key=local_only]").count() == 1
    _check(page, name="device-page")


def test_device_page_buttons_do_what_they_say_and_answer_inline(console):
    healthy = console.exporters["live-healthy"]
    page = _device_page(console, "live-healthy")
    before = healthy.reloads
    assert _press(page, "reload") == "Reload: reloaded"
    assert healthy.reloads == before + 1
    probes = healthy.probes
    assert _press(page, "probe") == "Probe now: healthy"
    assert healthy.probes == probes + 1
    assert "ago" in page.locator("#device-observation").inner_text()
    assert page.url.endswith("/change/")  # no page load
    _check(page)

    flaky = console.exporters["live-flaky"]
    page = _device_page(console, "live-flaky")
    flaky.set("GET", "/health", Reply(503))
    try:
        assert _press(page, "probe") == "Probe now: unhealthy: HTTP 503"
        page.locator("#device-timeline li").first.wait_for()
        assert "healthy → unhealthy" in page.locator("#device-timeline li").first.inner_text()
        badge = page.locator("#device-observation .ems-badge").first
        assert badge.inner_text() == "unhealthy"
        screenshot(page, "device-action")
    finally:
        flaky.overrides.clear()
        assert _press(page, "probe") == "Probe now: healthy"
    _check(page)


def test_use_observed_ip_button(console):
    page = _device_page(console, "live-moved")
    assert _press(page, "use-observed-ip") == "Use observed IP: IP set: now 127.0.0.1"
    stored = console.server.request("GET", "/devices/live-moved/status").json()
    assert stored["ip_address"] == "127.0.0.1"
    assert _press(page, "use-observed-ip") == "Use observed IP: unchanged: already at 127.0.0.1"
    _check(page)


def test_kubernetes_buttons_sync_and_delete_the_devices_objects(console):
    console.server.request("DELETE", "/kubernetes/resources/k8s-pub")
    page = _device_page(console, "k8s-pub")
    assert _press(page, "k8s-sync") == "Sync to Kubernetes: created: edge-device-k8s-pub"
    assert "edge-device-k8s-pub" in console.kube.names("services", "monitoring")
    assert _press(page, "k8s-delete") == "Delete Kubernetes objects: deleted: edge-device-k8s-pub"
    assert page.errors.dialogs, "deleting asks first"
    assert "edge-device-k8s-pub" not in console.kube.names("services", "monitoring")
    _check(page)


def test_history_button_shows_the_revisions_with_their_diffs(console):
    page = _device_page(console, "live-moved")
    page.click("a.historylink")
    page.wait_for_url(re.compile("/history/$"))
    entries = page.locator("#device-history .ems-revision h2").all_inner_texts()
    assert entries[0].startswith("v2 · Patched by admin:ops (admin)")
    assert entries[-1].startswith("v1 · Created by")
    added = page.locator("#device-history .ems-diff-add").all_inner_texts()
    assert any('"ip_address": "127.0.0.1"' in line for line in added)
    _check(page, name="device-history")


# ---- the home page ------------------------------------------------------------------------


def test_home_page_counts_link_to_the_filtered_lists(console):
    assert console.server.request("POST", "/kubernetes/sync/k8s-pub").status_code == 200
    page = console.page()
    page.goto(console.url("/admin/"))
    tiles = page.locator("#fleet-health a.ems-tile")
    assert tiles.count() == 7
    _check(page, name="home", full_page=True)
    unreachable = page.locator("#fleet-health a[data-status=unreachable] .ems-tile-count")
    count = int(unreachable.inner_text())
    down = page.locator("#fleet-down h2").inner_text()
    assert count > 0 and "Down now" in down
    assert page.locator("#fleet-down tbody tr, #fleet-down tr").count() > 1
    since = page.locator("#fleet-down td time").first
    assert "ago" in since.inner_text() and since.get_attribute("title").endswith("UTC")
    recent = page.locator("#fleet-recent").inner_text()
    assert "unknown →" not in recent  # first probes are not news
    assert "Leader:" in page.locator("#leader-status").inner_text()
    assert "Last sync of monitoring" in page.locator("#last-sync").inner_text()
    assert "All succeeded" in page.locator("#last-sync").inner_text()
    page.click("#fleet-health a[data-status=unreachable]")
    page.wait_for_url(re.compile("status=unreachable"))
    shown = page.locator("#changelist .paginator").inner_text()
    assert f"{count} device" in shown
    _check(page)


# ---- bulk actions -------------------------------------------------------------------------


def test_bulk_action_reports_one_summary_with_a_link_to_the_failed(console):
    page = console.page()
    page.goto(console.url(LIST + "?status=unhealthy"))
    selected = len(_rows(page))
    page.check("#action-toggle")
    page.select_option("select[name=action]", "reload_devices")
    page.click("button[name=index]")
    page.wait_for_load_state()
    messages = page.locator("ul.messagelist li").all_inner_texts()
    assert len(messages) == 1, messages
    assert messages[0].startswith(f"Reload of {selected} devices: {selected} failed. Failed: ")
    assert messages[0].count("Failed to connect") <= 3 and "more" in messages[0]
    _check(page, name="bulk-summary")
    page.click("ul.messagelist a")
    page.wait_for_url(re.compile("result="))
    assert len(_rows(page)) == selected
    _check(page)


# ---- who may do what, and hostile text ----------------------------------------------------


def test_a_viewer_sees_but_cannot_act(console):
    healthy = console.exporters["live-healthy"]
    page = _device_page(console, "live-healthy", user="viewer")
    assert page.locator("#device-actions button").count() == 0
    assert page.locator("#device-observation").count() == 1
    token = page.evaluate(
        "document.querySelector('[name=csrfmiddlewaretoken]')?.value || "
        "document.cookie.match(/csrftoken=([^;]+)/)[1]"
    )
    before = healthy.reloads
    answer = page.request.post(
        console.url(f"{LIST}live-healthy/_act/reload/"),
        headers={"X-CSRFToken": token, "HX-Request": "true"},
    )
    assert answer.status == 403
    page.goto(console.url(LIST))
    assert page.locator("select[name=action]").count() == 0
    assert healthy.reloads == before
    page.errors.take()


def test_a_post_without_the_csrf_token_is_refused(console):
    healthy = console.exporters["live-healthy"]
    page = _device_page(console, "live-healthy")
    before = healthy.reloads
    answer = page.request.post(console.url(f"{LIST}live-healthy/_act/reload/"))
    assert answer.status == 403
    assert healthy.reloads == before


def test_hostile_id_error_and_config_are_shown_as_text(console):
    for path in (LIST + "?q=evil", "/admin/", f"{LIST}{_admin_quote(HOSTILE_ID)}/change/"):
        page = console.page()
        page.goto(console.url(path))
        if "change" in path:
            page.locator("#running-config p").first.wait_for()
        assert page.locator("img[src=x]").count() == 0, path
        assert page.errors.dialogs == [], path
        assert HOSTILE_ID in page.locator("#content").inner_text(), path
        page.errors.take()
    page.locator("#running-config").wait_for()
    assert HOSTILE_ERROR not in page.content()  # escaped, never raw
    assert "&lt;script&gt;" in page.content()
    assert HOSTILE_VALUE in page.locator("#content").inner_text()
    _check(page)


# ---- every page: dark mode, 1280 px, no console errors -------------------------------------

PAGES = {
    "home": "/admin/",
    "device-list": LIST,
    "device-page": f"{LIST}live-drifted/change/",
    "device-history": f"{LIST}live-moved/history/",
    "revisions": "/admin/devices/devicerevision/",
    "sync-runs": "/admin/k8sbridge/syncrun/",
    "sync-status": "/admin/k8sbridge/syncrun/status/",
    "tokens": "/admin/users/apitoken/",
}


@pytest.mark.parametrize("name", list(PAGES))
def test_every_page_in_dark_mode_at_1280(console, name):
    page = console.page(dark=True)
    page.goto(console.url(PAGES[name]))
    if name == "device-page":
        page.locator("#running-config table").wait_for()
    assert background_luminance(page, "body") < 0.2
    for selector in ("#content", ".ems-panel", ".ems-tile", "#result_list td", ".module"):
        if page.locator(selector).count():
            assert background_luminance(page, selector) < 0.25, selector
    _check(page, name=f"{name}-dark" if name in ("home", "device-list", "device-page") else None)


# ---- labels (last: they change what the list shows) ---------------------------------------


def test_labels_show_in_the_list_and_filter_it_by_pair_and_by_selector(console):
    for device_id, labels in (
        ("live-healthy", {"site": "lab-3", "rack": "r2"}),
        ("live-flaky", {"site": "plant", "rack": "r1"}),
    ):
        answer = console.server.request(
            "PUT", f"/devices/{device_id}/labels", json={"labels": labels}
        )
        assert answer.status_code == 200, answer.text
    page = console.page()
    page.goto(console.url(LIST))
    # Shown by default once a device has labels; an earlier test chose columns already.
    page.click("#column-chooser summary")
    page.check("#column-chooser input[value=label_list]")
    page.click("#column-chooser button")
    page.wait_for_load_state()
    page.locator("#changelist-filter a", has_text="site=lab-3 (1)").click()
    page.wait_for_url(re.compile(r".*selector=site%3Dlab-3"))
    assert _rows(page) == ["live-healthy"]
    assert page.locator("td.field-label_list").inner_text() == "rack=r2 site=lab-3"
    _check(page, name="device-list-labels")

    page.fill("#selector-input", "rack in (r1,r2),site!=lab-3")
    page.click("#selector-form input[type=submit]")
    page.wait_for_url(re.compile(r".*selector=rack"))
    assert _rows(page) == ["live-flaky"]
    assert page.input_value("#selector-input") == "rack in (r1,r2),site!=lab-3"

    page.fill("#selector-input", "rack in (")
    page.click("#selector-form input[type=submit]")
    page.locator(".messagelist").wait_for()
    assert "Not a label selector" in page.locator(".messagelist").inner_text()
    assert _rows(page) == []
    _check(page)

    page.goto(console.url(f"{LIST}live-healthy/change/"))
    field = page.locator("#id_labels")
    assert json.loads(field.input_value()) == {"rack": "r2", "site": "lab-3"}
    field.scroll_into_view_if_needed()
    _check(page, name="device-form-labels")
