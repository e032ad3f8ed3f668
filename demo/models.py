"""The demo shop's fault settings: one row per service, written by the faults panel and the
``demo`` command, re-read every second by the running shop (a separate process)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from demo.faults import Faults


class ServiceFault(models.Model):
    service = models.CharField(max_length=64, unique=True)
    drop = models.FloatField(default=0.0, help_text="Share (0 to 1) of deliveries lost without a reaction.")
    slow_seconds = models.FloatField(default=0.0, help_text="Seconds added to every reaction.")
    fail = models.FloatField(default=0.0, help_text="Share (0 to 1) of processing attempts that fail with an error span.")
    offline = models.BooleanField(default=False, help_text="Stops consuming; the backlog drains when it comes back.")
    updated_at = models.DateTimeField(default=timezone.now)
    # Written by the running shop, so the panel can tell a running demo from a stale row.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    backlog = models.PositiveIntegerField(default=0, help_text="Messages waiting for this service, as last reported.")

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.service}: {self.faults().describe()}"

    def faults(self) -> Faults:
        return Faults(drop=self.drop, slow_seconds=self.slow_seconds, fail=self.fail, offline=self.offline)
