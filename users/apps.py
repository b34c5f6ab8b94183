from django.apps import AppConfig


class UsersConfig(AppConfig):
    name = "users"
    verbose_name = "Access"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the OpenAPI extensions for our authenticators.
        import users.schema  # noqa: F401
        from edgeserver.signals import server_starting
        from users.tokens import announce_bootstrap_token

        server_starting.connect(announce_bootstrap_token, dispatch_uid="bootstrap-token")
