from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest

from alerts.delivery import send_test_notification
from alerts.forms import StoredJSONField
from alerts.models import Alert, DeclaredExpectation, DeclaredFlow, Delivery, LearnedModel, NotificationChannel

# Every JSON column the admin edits (step lists, flow types, an alert's missing steps).
JSON_AS_STORED: dict[type[models.Field[Any, Any]], dict[str, Any]] = {models.JSONField: {"form_class": StoredJSONField}}


class DeclaredExpectationInline(admin.TabularInline):
    model = DeclaredExpectation
    extra = 1
    formfield_overrides = JSON_AS_STORED


@admin.register(DeclaredFlow)
class DeclaredFlowAdmin(admin.ModelAdmin):
    list_display = ("flow_type", "end_steps", "deadline_seconds")
    inlines = [DeclaredExpectationInline]
    formfield_overrides = JSON_AS_STORED


@admin.register(LearnedModel)
class LearnedModelAdmin(admin.ModelAdmin):
    list_display = ("flow_type", "flow_count", "learned_at", "changed_at")
    readonly_fields = ("flow_type", "flow_count", "graph", "learned_at", "changed_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # learned from finished flows; a row made here would have nothing to say


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ("id", "flow_type", "flow_key", "step", "service", "state", "opened_at", "resolved_at")
    list_filter = ("state", "flow_type")
    search_fields = ("flow_key", "step", "service")
    raw_id_fields = ("flow", "acknowledged_by")
    formfield_overrides = JSON_AS_STORED


class DeliveryInline(admin.TabularInline):
    model = Delivery
    extra = 0
    fields = ("event", "alert", "state", "attempts", "next_attempt_at", "delivered_at", "log")
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: NotificationChannel | None = None) -> bool:
        return False  # every field is the product's to write

    def get_queryset(self, request: HttpRequest) -> QuerySet[Delivery]:
        return super().get_queryset(request).order_by("-created_at")


@admin.register(NotificationChannel)
class NotificationChannelAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "target", "flow_types", "enabled")
    actions = ["send_test"]
    inlines = [DeliveryInline]
    formfield_overrides = JSON_AS_STORED

    @admin.action(description="Send a test notification")
    def send_test(self, request: HttpRequest, queryset: QuerySet[NotificationChannel]) -> None:
        for channel in queryset:
            delivery = send_test_notification(channel)
            level = messages.SUCCESS if delivery.state == Delivery.State.DELIVERED else messages.ERROR
            self.message_user(request, f"{channel.name}: {delivery.state} ({delivery.log[-1]['detail']})", level)


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ("id", "channel", "event", "alert", "state", "attempts", "created_at", "delivered_at")
    list_filter = ("state", "event", "channel")
    readonly_fields = (
        "channel",
        "alert",
        "event",
        "state",
        "attempts",
        "next_attempt_at",
        "claimed_until",
        "log",
        "created_at",
        "delivered_at",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # made by the alerts they deliver, or by "Send a test notification"
