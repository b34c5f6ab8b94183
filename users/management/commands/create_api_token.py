"""Issue an operator token, or a device token bound to one device id."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from users import tokens
from users.choices import TokenKind


class Command(BaseCommand):
    help = "Issue an API token and print it once (only its hash is stored)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--name", required=True, help="What the token is for")
        parser.add_argument(
            "--device",
            metavar="ID",
            help="Issue a device token valid only for GET/PUT /config/ID",
        )

    def handle(self, *args, name: str, device: str | None, **options) -> None:
        if device is not None:
            problem = tokens.device_id_rule(device)
            if problem:
                raise CommandError(problem)
        if tokens.active_token_named(name) is not None:
            raise CommandError(
                f"An active token is already named {name!r}: revoke it in the admin "
                "(API tokens) or choose another --name"
            )
        kind = TokenKind.DEVICE if device else TokenKind.OPERATOR
        _, raw = tokens.api_token_create(
            name=name, kind=kind, device_id=device or "", created_by="create_api_token"
        )
        self.stdout.write(raw)
        scope = f"device {device}" if device else "operator"
        self.stderr.write(f"{scope} token '{name}' issued; it is not shown again.")
