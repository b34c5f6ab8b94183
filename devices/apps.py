from django.apps import AppConfig


class DevicesConfig(AppConfig):
    name = "devices"
    verbose_name = "Edge devices"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        import devices.api.schema  # noqa: F401  (registers its OpenAPI extensions)
        from devices.api.errors import ERRORS
        from devices.client import raise_open_files_limit
        from devices.metrics import fleet_text
        from devices.monitor import register_listener
        from devices.validation import device_id_problem
        from edgeserver.api.errors import register_errors
        from edgeserver.metrics import register_text_section
        from users.tokens import set_device_id_rule

        register_errors(ERRORS)
        register_text_section(fleet_text)
        set_device_id_rule(device_id_problem)
        register_listener("devices.reconcile.ProfileReconcile")
        # Every process may probe (the monitor, `?refresh=true` in a worker, the admin).
        raise_open_files_limit()
