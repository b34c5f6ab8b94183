"""Upgrading a database keeps what it holds when models move between apps."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor


def _before_the_move(executor: MigrationExecutor) -> list[tuple[str, str | None]]:
    """Every app at its latest migration, but devices before ApiToken left it and users
    not migrated at all: a database of the release before."""
    others = [n for n in executor.loader.graph.leaf_nodes() if n[0] not in ("devices", "users")]
    return [*others, ("devices", "0003_reload_pending"), ("users", None)]


@pytest.mark.django_db(transaction=True)
def test_tokens_and_their_permissions_survive_the_move_to_the_users_app():
    executor = MigrationExecutor(connection)
    before = _before_the_move(executor)
    executor.migrate(before)
    old = executor.loader.project_state([n for n in before if n[1]]).apps
    ContentType = old.get_model("contenttypes", "ContentType")
    Permission = old.get_model("auth", "Permission")
    Group = old.get_model("auth", "Group")
    # The release before had no users app, so no content type of it.
    ContentType.objects.filter(app_label__in=["devices", "users"], model="apitoken").delete()
    token_type = ContentType.objects.create(app_label="devices", model="apitoken")
    view_tokens = Permission.objects.create(
        name="Can view API token", content_type=token_type, codename="view_apitoken"
    )
    Group.objects.create(name="auditors").permissions.add(view_tokens)
    old.get_model("devices", "ApiToken").objects.create(
        name="ci", kind="operator", prefix="ems_abc", digest="d" * 64
    )

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    from django.contrib.auth.models import Group as CurrentGroup

    from users.models import ApiToken

    token = ApiToken.objects.get()
    assert (token.name, token.digest) == ("ci", "d" * 64)
    assert ApiToken._meta.db_table == "users_apitoken"
    assert ApiToken._meta.db_table in connection.introspection.table_names()
    permission = CurrentGroup.objects.get(name="auditors").permissions.get()
    assert (permission.content_type.app_label, permission.codename) == ("users", "view_apitoken")
