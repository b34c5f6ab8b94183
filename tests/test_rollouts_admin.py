"""The rollout page in a real browser (Debian's chromium): its waves and devices, and the
pause / resume / abort buttons, against gunicorn whose monitor drives the rollout."""

from __future__ import annotations

import pytest

from tests.support.browser import (
    HEIGHT,
    WIDTH,
    chromium,
    chromium_available,
    horizontal_overflow,
    screenshot,
)
from tests.support.gunicorn import run_server
from tests.support.rollout_fleet import FAST_MONITOR, Fleet

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not chromium_available(), reason="needs /usr/bin/chromium"),
]
PASSWORD = "rollout-admin-pw-for-tests"


def _login(browser, url: str):
    page = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT}).new_page()
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(url + "/admin/login/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#content")
    return page


def test_the_rollout_page_shows_waves_and_devices_and_its_buttons_act(tmp_path):
    env = {**FAST_MONITOR, "DJANGO_SUPERUSER_PASSWORD": PASSWORD}
    with run_server(tmp_path, env=env) as server, chromium() as browser:
        made = server.manage(
            "createsuperuser", "--noinput", "--username", "ops", "--email", "ops@example.com"
        )
        assert made.returncode == 0, made.stderr
        fleet = Fleet(server)
        try:
            for n in range(5):
                fleet.add(f"edge-{n:02d}")
            fleet.wait_status("healthy")
            fleet.put_profile("lab", {"metrics": {"gpu_power": True}})
            started = fleet.start_rollout(
                "lab", {"interval": 5}, canary=1, waves=[50, 100], wave_wait_seconds=30,
                confirm_timeout_seconds=15,
            )  # fmt: skip
            rollout_id = started["id"]
            fleet.wait_rollout(rollout_id, lambda b: b["canary"]["completed_at"], what="canary")

            page = _login(browser, server.url)
            page.goto(server.url + "/admin/rollouts/rollout/?status__exact=running")
            assert page.locator("#result_list tbody tr").count() == 1
            screenshot(page, "rollout-list")
            page.goto(server.url + f"/admin/rollouts/rollout/{rollout_id}/change/")
            assert page.locator("#rollout-status").inner_text() == "Running"
            assert page.locator("#rollout-waves tbody tr").count() == 3
            states = page.locator("#rollout-devices tbody td:nth-child(3)").all_inner_texts()
            assert states == ["confirmed"] + ["pending"] * 4
            page.click("button[data-action=pause]")
            page.wait_for_selector("button[data-action=resume]")
            assert page.locator("#rollout-status").inner_text() == "Paused"
            assert "is paused" in page.locator(".messagelist").inner_text()
            assert fleet.rollout(rollout_id)["status"] == "paused"
            screenshot(page, "rollout-page", full_page=True)
            assert horizontal_overflow(page) == []

            page.click("button[data-action=abort]")
            page.wait_for_selector("#rollout-status:text('Aborted')")
            assert page.locator("#rollout-actions button").count() == 0
            body = fleet.rollout(rollout_id)
            assert (body["status"], body["reason"]) == ("aborted", "aborted by admin:ops")
            screenshot(page, "rollout-page-aborted", full_page=True)
            # Without the CSRF token a button's POST is refused and changes nothing.
            url = server.url + f"/admin/rollouts/rollout/{rollout_id}/_act/resume/"
            assert page.request.post(url).status == 403
            assert fleet.rollout(rollout_id)["status"] == "aborted"
            assert page.errors == []
        finally:
            fleet.close()
