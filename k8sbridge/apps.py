from django.apps import AppConfig


class K8sBridgeConfig(AppConfig):
    name = "k8sbridge"
    verbose_name = "Kubernetes bridge"
    default_auto_field = "django.db.models.BigAutoField"
