from django.apps import AppConfig
from django.core import checks


class TracingConfig(AppConfig):
    name = "tracing"
    verbose_name = "Tracing"

    def ready(self) -> None:
        import tracing.lookups  # noqa: F401  registers ``field__any``
        from tracing.checks import asyncapi_documents_check, flow_definitions_check

        checks.register(flow_definitions_check)
        checks.register(asyncapi_documents_check)
