from django.contrib import admin

from demo.models import ServiceFault


@admin.register(ServiceFault)
class ServiceFaultAdmin(admin.ModelAdmin):
    list_display = ("service", "drop", "slow_seconds", "fail", "offline", "backlog", "heartbeat_at")
    readonly_fields = ("heartbeat_at", "backlog")
