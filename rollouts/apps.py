from django.apps import AppConfig


class RolloutsConfig(AppConfig):
    name = "rollouts"
    verbose_name = "Staged rollouts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from devices.monitor import register_listener
        from edgeserver.api.errors import register_errors
        from edgeserver.metrics import register_text_section
        from rollouts.api.errors import ERRORS
        from rollouts.metrics import rollouts_text

        register_errors(ERRORS)
        register_text_section(rollouts_text)
        # The leader's monitor drives every running rollout (rollouts.driver).
        register_listener("rollouts.driver.RolloutDriver")
