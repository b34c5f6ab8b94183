"""Benchmarks of the hot paths: `make bench` (never part of `make test`).

Starts the server as production does (gunicorn with edgeserver/gunicorn.conf.py, the
container's defaults, the single device monitor), seeds a fresh database with 1000
devices served by a fake fleet (900 answering, 100 blackholed) and prints a markdown
table. Throughput is reported as the median of several runs and as a ratio to a bare
Django view measured in the same run under the same gunicorn settings.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ("fetch", "write", "fleet", "probe", "reload", "memory", "k8s")
WRK_DIR = Path(__file__).with_name("wrk")
DEVICES = 1000
BLACKHOLED = 100
PROBE_TIMEOUT = 2.0
RELOAD_TIMEOUT = 2.0


@dataclass
class Row:
    what: str
    how: str
    result: str
    target: str
    ok: bool | None

    def markdown(self) -> str:
        verdict = {True: "yes", False: "**no**", None: "—"}[self.ok]
        return f"| {self.what} | {self.how} | {self.result} | {self.target} | {verdict} |"


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)

    def add(self, *args) -> None:
        row = Row(*args)
        self.rows.append(row)
        print("  " + row.markdown(), flush=True)

    def table(self) -> str:
        head = "| what | how | result | target | holds |\n|---|---|---|---|---|"
        return "\n".join([head, *(r.markdown() for r in self.rows)])


# ---- helpers ---------------------------------------------------------------------------


@dataclass
class WrkRun:
    rps: float
    p50: float
    p99: float
    errors: int
    requests: int
    cpu_us: float = 0.0  # server CPU time (all its processes) per request, microseconds


def wrk(url: str, *, connections: int, seconds: int, script: Path, env: dict | None = None,
        server_pid: int | None = None) -> WrkRun:
    """Run wrk against `url`; with `server_pid`, also the server's CPU time per request
    (host throttling slows wall-clock throughput, not CPU time spent per request)."""
    cpu_before = tree_cpu_seconds(server_pid) if server_pid else 0.0
    threads = min(4, connections)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency",
         "-s", str(script), url],
        capture_output=True, text=True, check=True, env={**os.environ, **(env or {})},
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def ms(label: str) -> float:
        value, unit = re.search(rf"\s{label}\s+([\d.]+)(us|ms|s)\b", out).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    requests_done = int(re.search(r"(\d+) requests in", out).group(1))
    run = WrkRun(rps, ms("50%"), ms("99%"), int(errors.group(1)) if errors else 0,
                 requests_done)
    if server_pid:
        run.cpu_us = (tree_cpu_seconds(server_pid) - cpu_before) / requests_done * 1e6
    return run


def median(values: list[float]) -> float:
    return statistics.median(values)


def timed(call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and all its descendants."""
    total = 0.0
    for member in [pid, *descendants(pid)]:
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return total


def descendants(pid: int) -> list[int]:
    found = []
    for child in children(pid):
        found += [child, *descendants(child)]
    return found


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


# ---- the fleet and the servers ------------------------------------------------------------


class Fleet:
    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.fleet", "--healthy", str(DEVICES - BLACKHOLED),
             "--blackholed", str(BLACKHOLED)],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        ports = json.loads(self.process.stdout.readline())
        self.ports = ports["healthy"] + ports["blackholed"]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def seed(server, fleet: Fleet) -> None:
    """Register the fleet through the API, as operators do (each create reloads and probes)."""

    def create(index: int) -> None:
        body = {"device_type": ("jetson_orin", "raspberry_pi", "shelly")[index % 3],
                "ip_address": "127.0.0.1", "port": 9102, "reload_port": fleet.ports[index],
                "metrics": {"gpu_power": True, "cpu_temp": False}}
        response = server.request("POST", f"/config/bench-{index:04d}", json=body, timeout=60)
        assert response.status_code == 201, response.text

    with ThreadPoolExecutor(32) as pool:
        list(pool.map(create, range(DEVICES)))


def wait_for_first_round(server) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        counts = server.request("GET", "/metrics/summary").json()["by_status"]
        if counts["unknown"] == 0 and counts["unreachable"] >= BLACKHOLED:
            return
        time.sleep(0.5)
    raise RuntimeError(f"the monitor did not observe the fleet: {counts}")


# ---- scenarios -----------------------------------------------------------------------------


def bench_config_fetch(report: Report, server, baseline, runs: int, seconds: int) -> None:
    script = WRK_DIR / "get_config.lua"
    # Warm-up: each device's first call notes where it called from, each process fills
    # its cache and each thread opens its database connection.
    for target in (baseline, server):
        wrk(target.url, connections=32, seconds=max(3, seconds // 2), script=script)
    for connections in (32, 128):
        pairs = []
        for _ in range(runs):
            # Interleaved, so both see the same moments of the machine.
            base = wrk(baseline.url, connections=connections, seconds=seconds, script=script,
                       server_pid=baseline.process.pid)
            real = wrk(server.url, connections=connections, seconds=seconds, script=script,
                       server_pid=server.process.pid)
            pairs.append((base, real))
        ratio = median([r.rps / b.rps for b, r in pairs])
        cpu_ratio = median([b.cpu_us / r.cpu_us for b, r in pairs])
        p99 = median([r.p99 for _, r in pairs])
        errors = sum(b.errors + r.errors for b, r in pairs)
        result = (
            f"{median([r.rps for _, r in pairs]):.0f} req/s vs baseline "
            f"{median([b.rps for b, _ in pairs]):.0f} (ratio {ratio:.2f}); CPU per request "
            f"{median([r.cpu_us for _, r in pairs]):.0f} µs vs "
            f"{median([b.cpu_us for b, _ in pairs]):.0f} µs (ratio {cpu_ratio:.2f}); "
            f"p99 {p99:.0f} ms (baseline {median([b.p99 for b, _ in pairs]):.0f} ms)"
        )
        if errors:
            result += f", {errors} non-2xx"
        target = "≥ 0.8 x baseline" + ("; p99 < 25 ms" if connections == 32 else "")
        ok = ratio >= 0.8 and (connections != 32 or p99 < 25) and not errors
        report.add("config fetch", f"GET /config/{{id}}, {connections} conns, wrk", result,
                   target, ok)


def bench_config_write(report: Report, server, fleet: Fleet, runs: int, seconds: int,
                       label: str) -> None:
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    script.write_text(
        "ports = {" + ",".join(map(str, fleet.ports)) + "}\n"
        + (WRK_DIR / "put_config.lua").read_text()
    )
    results = [wrk(server.url, connections=16, seconds=seconds, script=script,
                   env={"BENCH_TOKEN": server.token}) for _ in range(runs)]
    script.unlink()
    rps = median([r.rps for r in results])
    errors = sum(r.errors for r in results)
    result = f"{rps:.0f} writes/s, p99 {median([r.p99 for r in results]):.0f} ms"
    if errors:
        result += f", {errors} non-2xx"
    target = "≥ 200 writes/s" if label == "SQLite" else "(reported)"
    ok = (rps >= 200 and not errors) if label == "SQLite" else None
    report.add(f"config write ({label})", "PUT /config/{id}, changed body, 16 conns, wrk",
               result, target, ok)


def bench_fleet_view(report: Report, server, runs: int) -> None:
    for path in ("/devices", "/metrics/summary"):
        times = [timed(lambda p=path: server.request("GET", p).raise_for_status())
                 for _ in range(max(20, runs * 5))]
        ms = median(times) * 1000
        report.add("fleet view", f"GET {path}, 1000 devices (100 blackholed)",
                   f"median {ms:.0f} ms", "median < 100 ms", ms < 100)
    times = []
    for _ in range(runs):
        times.append(timed(
            lambda: server.request("GET", "/devices?refresh=true", timeout=60).raise_for_status()
        ))
    seconds = median(times)
    report.add("fleet view", "GET /devices?refresh=true", f"median {seconds:.2f} s",
               f"< PROBE_TIMEOUT + 1 s = {PROBE_TIMEOUT + 1:.0f} s",
               seconds < PROBE_TIMEOUT + 1)


def bench_probe_round(report: Report, server, runs: int) -> None:
    code = (
        "import time, json\n"
        "from devices.selectors import device_list\n"
        "from devices.runtime import devices_probe\n"
        "times = []\n"
        f"for _ in range({runs}):\n"
        "    devices = list(device_list())\n"
        "    started = time.perf_counter()\n"
        "    devices_probe(devices=devices)\n"
        "    times.append(time.perf_counter() - started)\n"
        "print(json.dumps(times))\n"
    )
    result = server.manage("shell", "-c", code)
    assert result.returncode == 0, result.stderr
    seconds = median(json.loads(result.stdout.strip().splitlines()[-1]))
    report.add("probe round", "devices_probe over the fleet (one monitor round)",
               f"median {seconds:.2f} s", f"< PROBE_TIMEOUT + 1 s = {PROBE_TIMEOUT + 1:.0f} s",
               seconds < PROBE_TIMEOUT + 1)


def bench_bulk_reload(report: Report, server, runs: int) -> None:
    times, outcome = [], {}
    for _ in range(runs):
        started = time.perf_counter()
        response = server.request("POST", "/devices/reload", timeout=120)
        times.append(time.perf_counter() - started)
        outcome = response.json()
    seconds = median(times)
    report.add("bulk reload", "POST /devices/reload over the fleet",
               f"median {seconds:.2f} s ({outcome['success']} reloaded, "
               f"{outcome['failed']} failed)",
               f"< RELOAD_TIMEOUT + 2 s = {RELOAD_TIMEOUT + 2:.0f} s",
               seconds < RELOAD_TIMEOUT + 2)


def bench_kubernetes(report: Report) -> None:
    with tempfile.TemporaryDirectory() as workdir:
        result = subprocess.run(
            [sys.executable, "-m", "bench.k8s_sync", workdir], cwd=ROOT, capture_output=True,
            text=True, env={**os.environ, "DJANGO_SETTINGS_MODULE": "edgeserver.settings",
                            "DB_PATH": f"{workdir}/config.db", "SECRET_KEY": "bench",
                            "LOG_LEVEL": "WARNING"},
        )
    assert result.returncode == 0, result.stderr
    runs = json.loads(result.stdout.strip().splitlines()[-1])
    first, again, changed = runs["first"], runs["unchanged"], runs["changed"]
    report.add("Kubernetes sync", "1000 healthy devices, fake API server, first sync",
               f"{first['seconds']:.2f} s, {first['writes']} writes for {first['objects']} "
               "objects", "≤ 1 write per object", first["writes"] <= first["objects"])
    report.add("Kubernetes sync", "again, nothing changed",
               f"{again['seconds']:.2f} s, {again['writes']} writes, {again['lists']} lists",
               "0 writes, 1 list per kind, < 2 s",
               again["writes"] == 0 and again["lists"] == 3 and again["seconds"] < 2)
    report.add("Kubernetes sync", "again, 10 devices changed",
               f"{changed['seconds']:.2f} s, {changed['writes']} writes",
               f"exactly {changed['expected']} writes (3 per changed device)",
               changed["writes"] == changed["expected"])


def bench_memory(report: Report, server) -> None:
    for pid in children(server.process.pid):
        role = "monitor" if "monitor_devices" in cmdline(pid) else "gunicorn worker"
        mb = rss_mb(pid)
        report.add("memory", f"RSS of {role} (pid {pid}) after the runs", f"{mb:.0f} MB",
                   "< 150 MB", mb < 150)


# ---- main ----------------------------------------------------------------------------------


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.processor())
    return (f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}")


def main() -> None:
    parser = argparse.ArgumentParser(description="Benchmarks of Edge Metrics Server")
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--seconds", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--postgres", default="",
                        help="also measure writes on this PostgreSQL server, e.g. "
                        "postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--only", default=",".join(SCENARIOS),
                        help=f"comma-separated subset of: {', '.join(SCENARIOS)}")
    args = parser.parse_args()
    only = set(args.only.split(","))
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk (Debian/Ubuntu) or brew install wrk")

    # The e2e tests' launcher reads the suite's database setting: SQLite here.
    os.environ.update(DJANGO_SETTINGS_MODULE="edgeserver.settings", SECRET_KEY="bench")  # noqa: S106
    os.environ.pop("DATABASE_URL", None)
    from tests.support.gunicorn import run_server

    env = {"PROBE_TIMEOUT": str(PROBE_TIMEOUT), "RELOAD_TIMEOUT": str(RELOAD_TIMEOUT),
           "LOG_LEVEL": "WARNING"}
    report = Report()
    print(f"# Edge Metrics Server benchmarks, {datetime.now(UTC):%Y-%m-%d}\n\n{machine()}\n")
    fleet = Fleet()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            (tmp / "real").mkdir()
            (tmp / "base").mkdir()
            with run_server(tmp / "base", env={**env, "MONITOR_ENABLED": "false",
                            "DJANGO_SETTINGS_MODULE": "bench.baseline_settings"}) as baseline, \
                 run_server(tmp / "real", env=env) as server:
                seed(server, fleet)
                wait_for_first_round(server)
                if "fetch" in only:
                    bench_config_fetch(report, server, baseline, args.runs, args.seconds)
                if "write" in only:
                    bench_config_write(report, server, fleet, args.runs, args.seconds, "SQLite")
                if "fleet" in only:
                    bench_fleet_view(report, server, args.runs)
                if "probe" in only:
                    bench_probe_round(report, server, args.runs)
                if "reload" in only:
                    bench_bulk_reload(report, server, args.runs)
                if "memory" in only:
                    bench_memory(report, server)
            if args.postgres and "write" in only:
                (tmp / "pg").mkdir()
                with run_server(tmp / "pg", env=env, postgres_url=args.postgres) as server:
                    seed(server, fleet)
                    bench_config_write(report, server, fleet, args.runs, args.seconds,
                                       "PostgreSQL")
        if "k8s" in only:
            bench_kubernetes(report)
    finally:
        fleet.stop()
    print("\n" + report.table())


if __name__ == "__main__":
    main()
