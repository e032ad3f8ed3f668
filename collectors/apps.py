from django.apps import AppConfig


class CollectorsConfig(AppConfig):
    name = "collectors"
    verbose_name = "Collectors"

    def ready(self) -> None:
        from collectors.queue_watch import register_watched_buses

        register_watched_buses()
