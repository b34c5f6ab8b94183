"""Draining: how a replica leaves the load balancers before it stops, so a rolling restart
fails no request.

Kubernetes runs the preStop hook `python -m edgeserver.drain --pause N` before it sends
SIGTERM. The hook marks the server's runtime directory (edgeserver/runstate.py) and waits
N seconds: `GET /health/ready` answers 503 `draining`, so the endpoint controllers take the
pod out, and every answer meanwhile closes its connection (`CloseWhileDraining`), so
clients holding a kept-alive connection reconnect, to a replica that stays. Then SIGTERM:
gunicorn finishes the requests in flight and the monitor hands the leadership over.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from edgeserver.runstate import Draining, draining

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class CloseWhileDraining:
    """While the server drains, each answer says `Connection: close` and closes."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]):
        if draining().is_set():
            # gunicorn's start_response belongs to its response object, which decides
            # about keep-alive (a Connection header set by the application is ignored).
            force_close = getattr(getattr(start_response, "__self__", None), "force_close", None)
            if force_close is not None:
                force_close()
        return self.app(environ, start_response)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m edgeserver.drain",
        description="Mark the server in RUNTIME_DIR as draining (readiness fails, "
        "connections close), then wait; the manifests' preStop hook.",
    )
    parser.add_argument(
        "--pause",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="How long to wait after marking, for the endpoints to drop this server",
    )
    options = parser.parse_args(argv)
    try:
        Draining.of_this_server().mark()
    except (RuntimeError, OSError) as exc:
        print(f"drain: {exc}", file=sys.stderr)
        return 1
    time.sleep(max(0.0, options.pause))
    return 0


if __name__ == "__main__":
    sys.exit(main())
