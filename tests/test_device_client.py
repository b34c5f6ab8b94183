"""The one HTTP client for devices, against real servers on loopback: deadlines, body
limits, redirects and the outbound guard."""

from __future__ import annotations

import json
import time

import pytest

from devices import client
from devices.validation import address_allowed
from tests.support.exporters import Reply, closed_port

TIMEOUT = 0.5
# The deadline plus time for a loaded CI machine to notice it; a per-read timeout would
# let a trickling device run for many times this.
SLACK = 1.5


def test_health_of_a_running_exporter(exporters):
    exporter = exporters()
    answer = client.get_health("127.0.0.1", exporter.port, timeout=TIMEOUT)
    assert answer == client.HealthAnswer(status=200, exporter_status="healthy")
    assert exporter.requests == [("GET", "/health")]


@pytest.mark.parametrize("word", ["degraded", "starting"])
def test_exporter_that_runs_degraded_still_answers_200(exporters, word):
    exporter = exporters()
    exporter.exporter_status = word
    answer = client.get_health("127.0.0.1", exporter.port, timeout=TIMEOUT)
    assert (answer.status, answer.exporter_status) == (200, word)


def test_health_body_that_is_not_json_leaves_exporter_status_empty(exporters):
    exporter = exporters()
    exporter.set("GET", "/health", Reply(200, "OK", content_type="text/plain"))
    assert client.get_health("127.0.0.1", exporter.port, timeout=TIMEOUT).exporter_status == ""


def test_refused_connection_is_unreachable():
    with pytest.raises(client.DeviceUnreachable, match="Connection refused"):
        client.get_health("127.0.0.1", closed_port(), timeout=TIMEOUT)


def test_silent_device_costs_at_most_the_timeout(exporters):
    exporter = exporters()
    exporter.set("GET", "/health", Reply(hang=True))
    started = time.monotonic()
    with pytest.raises(client.DeviceUnreachable, match=r"No answer within 0\.5 s"):
        client.get_health("127.0.0.1", exporter.port, timeout=TIMEOUT)
    elapsed = time.monotonic() - started
    assert TIMEOUT * 0.9 <= elapsed < TIMEOUT + SLACK


@pytest.mark.parametrize("path", ["/health", "/config"])
def test_trickling_device_is_cut_at_the_deadline(exporters, path):
    # Each byte arrives well within any per-read timeout; the whole answer would take ~30 s.
    exporter = exporters()
    exporter.set("GET", path, Reply(200, {"status": "healthy", "pad": "x" * 200}, trickle=0.1))
    started = time.monotonic()
    with pytest.raises(client.DeviceUnreachable, match="No answer within"):
        if path == "/health":
            client.get_health("127.0.0.1", exporter.port, timeout=TIMEOUT)
        else:
            client.get_config("127.0.0.1", exporter.port, timeout=TIMEOUT)
    assert time.monotonic() - started < TIMEOUT + SLACK


def test_garbage_instead_of_http_is_unreachable(exporters):
    exporter = exporters()
    exporter.set("GET", "/health", Reply(raw=b"hello there\r\n\r\n"))
    with pytest.raises(client.DeviceUnreachable, match="Invalid HTTP answer"):
        client.get_health("127.0.0.1", exporter.port, timeout=TIMEOUT)


def test_reload_is_acknowledged_by_a_text_200(exporters):
    exporter = exporters()
    client.post_reload("127.0.0.1", exporter.port, timeout=TIMEOUT)
    assert exporter.reloads == 1


def test_reload_refused_by_the_device_reports_its_status(exporters):
    exporter = exporters()
    exporter.set("POST", "/reload", Reply(500, {"error": "boom"}))
    with pytest.raises(client.DeviceBadAnswer, match="Device returned HTTP 500") as caught:
        client.post_reload("127.0.0.1", exporter.port, timeout=TIMEOUT)
    assert caught.value.status == 500


@pytest.mark.parametrize(
    "location",
    ["http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/", "http://10.0.0.1:9101/"],
)
def test_redirects_are_never_followed(exporters, outbound, location):
    exporter = exporters()
    for method, path in (("GET", "/health"), ("GET", "/config"), ("POST", "/reload")):
        exporter.set(method, path, Reply(302, "", headers={"Location": location}))
    assert client.get_health("127.0.0.1", exporter.port, timeout=TIMEOUT).status == 302
    with pytest.raises(client.DeviceBadAnswer, match="HTTP 302"):
        client.get_config("127.0.0.1", exporter.port, timeout=TIMEOUT)
    with pytest.raises(client.DeviceBadAnswer, match="HTTP 302"):
        client.post_reload("127.0.0.1", exporter.port, timeout=TIMEOUT)
    # Only the device itself was contacted, three times; nothing towards the Location.
    assert outbound.attempts == [("127.0.0.1", exporter.port)] * 3


def test_redirect_to_another_loopback_server_is_not_followed_either(exporters):
    canary = exporters()
    exporter = exporters()
    exporter.set("GET", "/config", Reply(307, "", headers={"Location": f"{canary.url}/config"}))
    with pytest.raises(client.DeviceBadAnswer, match="HTTP 307"):
        client.get_config("127.0.0.1", exporter.port, timeout=TIMEOUT)
    assert canary.requests == []


def _object_of_size(size: int) -> dict:
    skeleton = len(json.dumps({"pad": ""}))
    return {"pad": "x" * (size - skeleton)}


def test_config_of_exactly_one_mebibyte_is_accepted(exporters):
    exporter = exporters()
    exporter.running_config = _object_of_size(1024 * 1024)
    assert len(json.dumps(exporter.running_config)) == 1024 * 1024
    assert client.get_config("127.0.0.1", exporter.port, timeout=2)["pad"].startswith("x")


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (Reply(200, _object_of_size(1024 * 1024 + 1)), "larger than 1 MiB"),
        (Reply(200, "<html>not json</html>", content_type="text/html"), "not JSON"),
        (Reply(200, [1, 2, 3]), "not an object"),
        (Reply(200, b'{"interval": NaN}'), "not JSON"),
        (Reply(404, {"error": "no config"}), "Device returned HTTP 404"),
    ],
)
def test_config_that_is_not_a_small_json_object_is_a_bad_answer(exporters, reply, message):
    exporter = exporters()
    exporter.set("GET", "/config", reply)
    with pytest.raises(client.DeviceBadAnswer, match=message):
        client.get_config("127.0.0.1", exporter.port, timeout=2)


def test_ipv6_loopback_device(exporters):
    exporter = exporters(host="::1")
    assert client.get_health("::1", exporter.port, timeout=TIMEOUT).status == 200
    assert (
        client.device_url("::1", exporter.port, "/health") == f"http://[::1]:{exporter.port}/health"
    )


def test_ipv4_mapped_address_is_judged_and_reached_as_ipv4(exporters, outbound):
    exporter = exporters()
    assert client.get_health("::ffff:127.0.0.1", exporter.port, timeout=TIMEOUT).status == 200
    assert outbound.attempts == [("127.0.0.1", exporter.port)]


@pytest.mark.parametrize(
    "ip",
    [
        "169.254.169.254",  # cloud metadata
        "::ffff:169.254.169.254",
        "10.0.0.1",  # private, but not listed in the test settings
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "fe80::1",
        "ff02::1",
        "::",
    ],
)
def test_guard_refuses_before_any_packet_leaves(outbound, ip):
    for call in (client.get_health, client.get_config, client.post_reload):
        with pytest.raises(client.AddressNotAllowed, match="outside DEVICE_ALLOWED_NETWORKS"):
            call(ip, 9101, timeout=TIMEOUT)
    assert outbound.attempts == []


PRODUCTION_DEFAULT = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"]


@pytest.mark.parametrize(
    ("networks", "ip", "allowed"),
    [
        (PRODUCTION_DEFAULT, "10.20.30.40", True),
        (PRODUCTION_DEFAULT, "172.31.255.1", True),
        (PRODUCTION_DEFAULT, "192.168.1.57", True),
        (PRODUCTION_DEFAULT, "100.64.0.9", True),
        (PRODUCTION_DEFAULT, "fd12:3456::1", True),
        (PRODUCTION_DEFAULT, "::ffff:192.168.1.57", True),
        (PRODUCTION_DEFAULT, "8.8.8.8", False),
        (PRODUCTION_DEFAULT, "127.0.0.1", False),
        (PRODUCTION_DEFAULT, "::1", False),
        (PRODUCTION_DEFAULT, "169.254.169.254", False),
        (PRODUCTION_DEFAULT, "fe80::1", False),
        (PRODUCTION_DEFAULT, "172.32.0.1", False),
        # A catch-all does not admit loopback, link-local, multicast or unspecified...
        (["0.0.0.0/0", "::/0"], "8.8.8.8", True),
        (["0.0.0.0/0", "::/0"], "127.0.0.1", False),
        (["0.0.0.0/0", "::/0"], "169.254.169.254", False),
        (["0.0.0.0/0", "::/0"], "224.0.0.1", False),
        (["0.0.0.0/0", "::/0"], "0.0.0.0", False),
        (["0.0.0.0/0", "::/0"], "fe80::1", False),
        (["0.0.0.0/0", "::/0"], "::ffff:127.0.0.1", False),
        # ...a network listed inside the special range does.
        (["169.254.169.254/32"], "169.254.169.254", True),
        (["127.0.0.0/8"], "127.9.9.9", True),
        (["127.0.0.1/32"], "127.0.0.2", False),
        (["fe80::/64"], "fe80::1", True),
        ([], "10.0.0.1", False),
    ],
)
def test_allowed_networks_rule(settings, networks, ip, allowed):
    settings.DEVICE_ALLOWED_NETWORKS = networks
    assert address_allowed(ip) is allowed


def test_bounded_concurrency_keeps_order_and_limit():
    import asyncio

    running = peak = 0

    async def work(session, n: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)
        running -= 1
        return n * n

    assert client.run_each(work, list(range(40)), limit=5) == [n * n for n in range(40)]
    assert peak == 5


def test_thousands_of_calls_in_flight_at_once_without_a_thread_each(exporters):
    """Every call of a batch is in flight together, up to the limit, in one thread."""
    import threading

    exporter = exporters()
    exporter.set("GET", "/health", Reply(hang=True))
    seen_threads = set()

    async def probe(session, _):
        seen_threads.add(threading.get_ident())
        try:
            await client.fetch_health(session, "127.0.0.1", exporter.port, timeout=1.0)
        except client.DeviceUnreachable as exc:
            return str(exc)

    results = client.run_each(probe, list(range(300)), limit=1000)
    assert results == ["No answer within 1 s"] * 300
    assert seen_threads == {threading.get_ident()}
    # All 300 were connected before the first one gave up.
    assert exporter.open_before_first_close() == 300


def _limits_seen_by_a_new_process(soft: int, hard: int, concurrency: int) -> tuple[str, str]:
    """(soft limit after django.setup(), what it logged) in a process started with these."""
    import os
    import resource
    import subprocess
    import sys

    code = (
        "import django, resource; django.setup(); "
        "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "PROBE_CONCURRENCY": str(concurrency),
        },
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip(), done.stderr


def test_process_raises_its_open_files_limit_to_what_probes_need():
    soft, log = _limits_seen_by_a_new_process(256, 8192, 4096)
    assert soft == str(4096 + client.OTHER_OPEN_FILES)
    assert "open-files limit" not in log


def test_process_says_when_the_hard_limit_is_too_low_and_bounds_its_calls():
    soft, log = _limits_seen_by_a_new_process(256, 1024, 4096)
    assert soft == "1024"
    assert "The open-files limit is 1024" in log
    assert "at most 512 device calls are made at once" in log
