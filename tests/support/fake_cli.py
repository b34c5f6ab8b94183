"""Stand-ins for `kubectl` and `docker` that record each call, so the scripts' real (not
dry-run) paths can be tested without a cluster or a Docker engine.

Run as `python fake_cli.py kubectl|docker ARGS...`. FAKE_* variables set the cluster's
answers; `kubectl apply -k DIR` renders DIR with the real kustomize (REAL_KUBECTL) and keeps
the result, so a test sees exactly what would have been applied.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def flag(name: str) -> bool:
    return os.environ.get(name, "true") == "true"


def kubectl(args: list[str]) -> int:
    verb = args[0] if args else ""
    if verb == "get" and args[1] == "namespace":
        if flag("FAKE_NAMESPACE_EXISTS"):
            print(f"NAME {args[2]} Active")
            return 0
        print(f'Error from server (NotFound): namespaces "{args[2]}" not found', file=sys.stderr)
        return 1
    if verb == "get" and args[1] == "servicemonitors.monitoring.coreos.com":
        if flag("FAKE_SERVICEMONITOR_CRD"):
            return 0
        print('error: the server doesn\'t have a resource type "servicemonitors"', file=sys.stderr)
        return 1
    if verb == "apply" and args[1] == "-k":
        rendered = subprocess.run(
            [os.environ["REAL_KUBECTL"], "kustomize", args[2]], capture_output=True, text=True
        )
        if rendered.returncode != 0:
            sys.stderr.write(rendered.stderr)
            return rendered.returncode
        applied = Path(os.environ["FAKE_STATE"]) / "applied.yaml"
        applied.write_text(rendered.stdout)
        print("applied")
        return 0
    if verb == "rollout":
        if flag("FAKE_ROLLOUT_OK"):
            print('deployment "edge-metrics-server" successfully rolled out')
            return 0
        print("error: timed out waiting for the condition", file=sys.stderr)
        return 1
    if verb == "get" and args[1] == "secret":
        print(os.environ.get("FAKE_API_TOKENS", ""), end="")
        return 0
    if verb == "get" and args[1] == "deployment/edge-metrics-server":
        print(os.environ.get("FAKE_IMAGE", ""), end="")
        return 0
    if verb == "logs":
        print(os.environ.get("FAKE_LOGS", ""))
        return 0
    return 0


def main() -> int:
    program, args = sys.argv[1], sys.argv[2:]
    state = Path(os.environ["FAKE_STATE"])
    with open(state / "calls.jsonl", "a") as calls:
        calls.write(json.dumps([program, *args]) + "\n")
    if program == "kubectl":
        return kubectl(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
