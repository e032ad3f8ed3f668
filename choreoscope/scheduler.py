"""The embedded default's stand-in for Celery beat: one daemon thread that runs each periodic
job's task in-process at its interval, one job after another, the way ``choreoscope.dispatch``
runs a task in-process. A failing job is logged and tried again next time."""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings

from choreoscope.celery import app
from choreoscope.dispatch import run_in_process
from choreoscope.schedules import PeriodicJob, periodic_jobs

log = logging.getLogger(__name__)


class InProcessScheduler:
    def __init__(self, jobs: list[PeriodicJob] | None = None, tick_seconds: float = 0.5) -> None:
        self.jobs = jobs if jobs is not None else periodic_jobs()
        self.tick_seconds = tick_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="choreoscope-scheduler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        next_run = {job.name: time.monotonic() + min(job.every_seconds, 5) for job in self.jobs}
        while not self._stop.wait(self.tick_seconds):
            now = time.monotonic()
            for job in self.jobs:
                if now >= next_run[job.name]:
                    next_run[job.name] = now + job.every_seconds
                    self._run_job(job)

    def _run_job(self, job: PeriodicJob) -> None:
        if job.task not in app.tasks:
            log.debug("periodic job %r: task %s is not registered", job.name, job.task)
            return
        try:
            run_in_process(job.task)
        except Exception:
            log.exception("periodic job %r failed", job.name)


def start_if_configured() -> InProcessScheduler | None:
    """Start the periodic jobs in this process when it runs them itself instead of Celery beat."""
    if not settings.IN_PROCESS_SCHEDULER:
        return None
    scheduler = InProcessScheduler()
    scheduler.start()
    return scheduler
