"""Work off the request path: the one place that knows whether tasks go to a broker or run here.

Callers ask for a Celery task to run soon, after their commit, and never ask which mode runs::

    transaction.on_commit(lambda: dispatch.kick(correlate_pending))

- Production (a broker): a kick publishes the task. A broker round trip per request would cost
  more than the request, so kicks close together share one publication, sent
  ``PUBLISH_DELAY_SECONDS`` after the first of them and always after the last of them, so that
  the task finds every kicking commit's rows.
- Embedded (``task_always_eager``, no broker): the same task runs in this process, on a worker
  thread of its own (a slow webhook must not hold up correlation). Kicks while it waits join that
  run; a kick while it runs makes it run once more, so it never misses a kicking commit's rows.

A kick never fails its caller: a failure is logged, and the periodic jobs
(``choreoscope.schedules``) are the safety net. ``CoalescedCall`` is the same "at most once per
interval, always after the last request" rule for any function (the live stream's publisher).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from django.db import close_old_connections, connections

from choreoscope.celery import app

log = logging.getLogger(__name__)

PUBLISH_DELAY_SECONDS = 0.05


class NamedTask(Protocol):
    name: str


Task = str | NamedTask
# A bounded slice of a job the kicking thread may take itself; True when more may be waiting.
Step = Callable[[], bool]


class CoalescedCall:
    """Calls ``call`` once, ``interval`` seconds after the first request since its last call;
    requests meanwhile join that call. Its flag is cleared just before the call starts, so a
    request is always followed by a call that starts after it. A failing call is logged."""

    def __init__(self, interval: float, call: Callable[[], object]) -> None:
        self.interval = interval
        self._call = call
        self._state = threading.Condition()
        self._scheduled = False
        self._calling = 0

    def request(self) -> None:
        with self._state:
            if self._scheduled:
                return
            self._scheduled = True
        timer = threading.Timer(self.interval, self._fire)
        timer.daemon = True
        try:
            timer.start()
        except BaseException:
            with self._state:
                self._scheduled = False
            raise

    def _fire(self) -> None:
        with self._state:
            self._scheduled = False
            self._calling += 1
        try:
            self._call()
        except Exception:
            log.exception("%r failed", self._call)
        finally:
            with self._state:
                self._calling -= 1
                self._state.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no call is scheduled or under way; False if ``timeout`` passed first."""
        with self._state:
            return self._state.wait_for(lambda: not self._scheduled and not self._calling, timeout)


class Lane:
    """One job's in-process worker: a thread that runs the job whenever it is wanted, one run at
    a time. A caller may also take a bounded first step itself (``step_then_continue``); the lane
    never runs while such a step does."""

    def __init__(self, name: str, run: Callable[[str], object]) -> None:
        self.name = name
        self._run = run
        self._state = threading.Condition()
        self._wanted = False
        self._busy = False  # a run, or a caller's step, is under way
        self._thread: threading.Thread | None = None

    def kick(self) -> None:
        with self._state:
            self._wanted = True
            self._start()
            self._state.notify_all()

    def step_then_continue(self, step: Step) -> None:
        """Take ``step`` in the calling thread unless the job is already under way (then it runs
        once more afterwards instead); the lane finishes the job if the step says more waits."""
        with self._state:
            if self._busy:
                self._wanted = True  # the run under way may have started before the caller's commit
                self._start()
                return
            self._busy = True
        more = False
        try:
            more = step()
        finally:
            with self._state:
                self._busy = False
                self._wanted = self._wanted or more
                if self._wanted:
                    self._start()
                self._state.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until the job is neither wanted nor under way; False if ``timeout`` passed first."""
        with self._state:
            return self._state.wait_for(lambda: not self._wanted and not self._busy, timeout)

    def _start(self) -> None:  # with self._state held
        # is_alive() is also False for a thread of the parent process after a fork.
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._work, name=f"dispatch {self.name}", daemon=True)
            self._thread.start()

    def _work(self) -> None:
        while True:
            with self._state:
                self._state.wait_for(lambda: self._wanted and not self._busy)
                self._wanted, self._busy = False, True
            try:
                self._run(self.name)
            except Exception:
                log.exception("in-process job %s failed; the periodic jobs will retry", self.name)
            finally:
                with self._state:
                    self._busy = False
                    self._state.notify_all()


class Dispatcher:
    """Kicks to lanes (tasks run in-process) or to coalesced publications (a broker)."""

    def __init__(
        self,
        in_process: Callable[[], bool],
        publish: Callable[[str], object],
        run: Callable[[str], object],
        publish_delay: float = PUBLISH_DELAY_SECONDS,
    ) -> None:
        self._in_process = in_process
        self._publish = publish
        self._run = run
        self.publish_delay = publish_delay
        self._lock = threading.Lock()
        self._lanes: dict[str, Lane] = {}
        self._publications: dict[str, CoalescedCall] = {}

    def kick(self, task: Task, first_step: Step | None = None) -> None:
        name = task_name(task)
        try:
            if not self._in_process():
                self._publication(name).request()
            elif first_step is not None:
                self._lane(name).step_then_continue(first_step)
            else:
                self._lane(name).kick()
        except Exception:
            log.warning("Could not run %s off the request path; the periodic jobs will pick its work up.", name, exc_info=True)

    def wait_idle(self, timeout: float) -> bool:
        with self._lock:
            waiting: list[Lane | CoalescedCall] = [*self._lanes.values(), *self._publications.values()]
        deadline = time.monotonic() + timeout
        return all(each.wait_idle(max(0.0, deadline - time.monotonic())) for each in waiting)

    def _lane(self, name: str) -> Lane:
        with self._lock:
            if name not in self._lanes:
                self._lanes[name] = Lane(name, self._run)
            return self._lanes[name]

    def _publication(self, name: str) -> CoalescedCall:
        with self._lock:
            if name not in self._publications:
                self._publications[name] = CoalescedCall(self.publish_delay, lambda: self._publish(name))
            return self._publications[name]


def task_name(task: Task) -> str:
    return task if isinstance(task, str) else task.name


def tasks_run_in_process() -> bool:
    """The embedded default runs Celery tasks eagerly; nothing outside this module asks."""
    return bool(app.conf.task_always_eager)


def publish_to_broker(name: str) -> None:
    try:
        app.tasks[name].delay()
    except Exception:
        log.warning("Could not publish %s; the periodic jobs will pick its work up.", name, exc_info=True)


def run_in_process(name: str) -> None:
    """Run the task here and now, on fresh database connections that are closed afterwards (a
    long-lived thread must not hold one open, nor outlive the database it used)."""
    close_old_connections()
    try:
        app.tasks[name].apply(throw=True)
    finally:
        connections.close_all()


_dispatcher = Dispatcher(tasks_run_in_process, publish_to_broker, run_in_process)


def kick(task: Task, first_step: Step | None = None) -> None:
    """Ask for ``task`` (a Celery task or its name) to run soon; call it after the commit whose
    rows it should find. Where tasks run in-process and ``first_step`` is given, the calling
    thread takes that bounded step itself (so a lone client reads its own result next), and the
    task runs afterwards only if the step says more waits. Never raises."""
    _dispatcher.kick(task, first_step)


def wait_idle(timeout: float = 5.0) -> bool:
    """Wait until no kick is pending or running in this process; False if ``timeout`` passed first."""
    return _dispatcher.wait_idle(timeout)
