"""docs/API.md and the README's error table are what the schema and the catalogue of
error kinds say today (`manage.py api_reference` writes them)."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from edgeserver.api.errorkinds import catalogue
from tests.support.gunicorn import ROOT


def test_the_api_reference_and_the_readme_error_table_are_current():
    call_command("api_reference", "--check")


def test_every_error_kind_is_in_the_readme_table():
    readme = (ROOT / "README.md").read_text()
    for kind in catalogue():
        assert f"| `{kind.error}` | {kind.status} |" in readme, kind.error


@pytest.mark.parametrize("route", ["`GET /metrics`", "`PUT /d/{path_token}/config/{device_id}`"])
def test_the_reference_covers_every_route(route):
    assert route in (ROOT / "docs" / "API.md").read_text()
