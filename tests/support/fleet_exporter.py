"""Exporters that load their config from a real server, as edge-metrics-exporter does
(CLIENTS.md): `POST /reload` answers 200 text/plain at once and only sets a flag; a loop
that looks at the flag once a second then fetches `GET /config/{id}` from the server and
runs it (what `GET /config` on the management port reports). So a reload is applied 0-1 s
after it is answered, and several reloads within a second are one fetch.

Variants: one that answers the reload but never applies what it fetched, and one that
dies (closes its listener) after loading a config it cannot run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import requests

from tests.support.exporters import FakeExporter

# The exporter's CONFIG_TIMEOUT default.
CONFIG_TIMEOUT = 5


class FleetExporter(FakeExporter):
    def __init__(
        self,
        device_id: str,
        server_url: str,
        *,
        applies: bool = True,
        dies_on: Callable[[dict[str, Any]], bool] | None = None,
        port: int = 0,
    ) -> None:
        super().__init__(port=port)
        self.device_id = device_id
        self.server_url = server_url
        self.applies = applies
        self.dies_on = dies_on
        self.fetched: list[dict[str, Any]] = []
        self.dead = False
        self._reload_asked = threading.Event()
        self._stop = threading.Event()
        self.on_request = self._heard
        threading.Thread(target=self._loop, daemon=True).start()

    def start(self) -> None:
        """What the exporter does at start: load its config from the server."""
        self._load()

    def _heard(self, method: str, path: str) -> None:
        if (method, path) == ("POST", "/reload"):
            self._reload_asked.set()

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            if self._reload_asked.is_set():
                self._reload_asked.clear()
                self._load()

    def _load(self) -> None:
        try:
            answer = requests.get(
                f"{self.server_url}/config/{self.device_id}", timeout=CONFIG_TIMEOUT
            )
        except requests.RequestException:
            return
        if answer.status_code != 200:
            return
        config = answer.json()
        with self._lock:
            self.fetched.append(config)
        if self.dies_on is not None and self.dies_on(config):
            self.die()
            return
        if self.applies:
            self.running_config = config

    def die(self) -> None:
        self.dead = True
        self._stop.set()
        self.close()

    def stop(self) -> None:
        self._stop.set()
        self.close()
