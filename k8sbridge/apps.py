from django.apps import AppConfig


class K8sBridgeConfig(AppConfig):
    name = "k8sbridge"
    verbose_name = "Kubernetes bridge"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from devices.monitor import register_listener
        from edgeserver.api.errors import register_errors
        from edgeserver.leadership import register_elector
        from edgeserver.metrics import register_collector
        from k8sbridge.api.errors import ERRORS
        from k8sbridge.runs import LastSyncCollector

        # None of these imports the Kubernetes client: it is loaded only where it is used.
        register_errors(ERRORS)
        register_collector(LastSyncCollector())
        register_listener("k8sbridge.autosync.AutoSync")
        register_elector("kubernetes", "k8sbridge.lease.LeaseElector")
