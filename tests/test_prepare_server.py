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


def test_three_servers_starting_at_once_migrate_collect_and_bootstrap_once(tmp_path):
    """Replicas (or two `make run` in one checkout) start together on one empty database:
    every start succeeds, one of them migrates and collects, and exactly one bootstrap
    operator token is issued."""
    import os

    from tests.support.gunicorn import fresh_database

    with fresh_database(tmp_path) as db_env:
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in {"DATABASE_URL", "DB_PATH", "API_TOKENS"}
        }
        env.update(
            db_env,
            STATIC_ROOT=str(tmp_path / "static"),
            SECRET_KEY="test",
            DJANGO_SETTINGS_MODULE="edgeserver.settings",
            AUTH_MODE="token",
        )
        script = (
            "import django; django.setup(); "
            "from django.core.management import call_command; "
            "call_command('prepare_server'); "
            "from users.tokens import operator_token_bootstrap; "
            "print('token' if operator_token_bootstrap() else 'none')"
        )
        starts = [
            subprocess.Popen(
                [sys.executable, "-c", script],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(3)
        ]
        outcomes = [process.communicate(timeout=300) for process in starts]
        assert [process.returncode for process in starts] == [0, 0, 0], outcomes
        printed = "".join(out for out, _ in outcomes)
        assert printed.count("Applying") == 1
        assert printed.count("Collecting static files") == 1
        assert sorted(line for line in printed.split() if line in {"token", "none"}) == [
            "none",
            "none",
            "token",
        ]
