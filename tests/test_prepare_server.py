"""`manage.py prepare_server`: a server start does what is missing and nothing else."""

from __future__ import annotations

import subprocess
import sys
import time

from tests.support.gunicorn import ROOT


def prepare(env: dict[str, str]) -> tuple[str, float]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "manage.py", "prepare_server"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout, time.monotonic() - started


def test_a_restart_migrates_and_collects_only_what_changed(tmp_path):
    import os

    env = {
        **os.environ,
        "DB_PATH": str(tmp_path / "config.db"),
        "STATIC_ROOT": str(tmp_path / "static"),
        "SECRET_KEY": "test",
        "DJANGO_SETTINGS_MODULE": "edgeserver.settings",
    }
    env.pop("DATABASE_URL", None)
    first, _ = prepare(env)
    assert "Applying" in first and "Collecting static files" in first
    assert (tmp_path / "static" / "staticfiles.json").exists()
    again, _ = prepare(env)
    assert again == ""  # nothing to do, nothing done
    (tmp_path / "config.db").unlink()
    after_loss, _ = prepare(env)
    assert "Applying" in after_loss and "Collecting" not in after_loss
