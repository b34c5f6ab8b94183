from django.apps import AppConfig


class DevicesConfig(AppConfig):
    name = "devices"
    verbose_name = "Edge devices"
    default_auto_field = "django.db.models.BigAutoField"
