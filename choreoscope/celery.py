"""The Celery app. Workers: ``celery -A choreoscope worker``; beat: ``celery -A choreoscope beat``."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "choreoscope.settings")

app = Celery("choreoscope")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_finalize.connect
def install_beat_schedule(sender: Celery, **kwargs: object) -> None:
    from choreoscope.schedules import beat_schedule

    sender.conf.beat_schedule = beat_schedule()
