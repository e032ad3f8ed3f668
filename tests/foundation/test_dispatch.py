"""choreoscope.dispatch: kicks coalesce, in-process lanes run a job one run at a time, and a
broker gets one publication per interval, always after the last kick. No broker, no database."""

from __future__ import annotations

import itertools
import logging
import threading
import time

import pytest

from choreoscope.dispatch import CoalescedCall, Dispatcher


class Job:
    """A fake task: records its runs; ``hold`` keeps a run going until released."""

    def __init__(self, hold: bool = False, fail_first: bool = False) -> None:
        self.runs: list[str] = []
        self.started = threading.Semaphore(0)
        self.release = threading.Event()
        self.hold = hold
        self.fail_first = fail_first

    def __call__(self, name: str) -> None:
        self.runs.append(name)
        self.started.release()
        if self.hold:
            self.release.wait(5)
        if self.fail_first and len(self.runs) == 1:
            raise RuntimeError("the job broke")


def in_process(job: Job) -> Dispatcher:
    return Dispatcher(in_process=lambda: True, publish=pytest.fail, run=job)


def test_a_kick_runs_the_job_on_a_worker_thread():
    ran_on: list[str] = []

    def run(name: str) -> None:
        ran_on.append(threading.current_thread().name)

    dispatcher = Dispatcher(in_process=lambda: True, publish=pytest.fail, run=run)
    dispatcher.kick("tracing.tasks.correlate_pending")
    assert dispatcher.wait_idle(5)
    assert len(ran_on) == 1 and ran_on[0] != threading.current_thread().name


def test_a_kick_during_a_run_makes_it_run_exactly_once_more():
    job = Job(hold=True)
    dispatcher = in_process(job)
    dispatcher.kick("job")
    assert job.started.acquire(timeout=5)
    for _ in range(3):
        dispatcher.kick("job")
    job.release.set()
    assert dispatcher.wait_idle(5)
    assert job.runs == ["job", "job"]


def test_many_kicks_while_the_job_waits_to_run_cause_one_run():
    job = Job()
    dispatcher = in_process(job)
    step_taken, finish_step = threading.Event(), threading.Event()

    def slow_step() -> bool:
        step_taken.set()
        finish_step.wait(5)
        return False

    caller = threading.Thread(target=dispatcher.kick, args=("job", slow_step))
    caller.start()
    assert step_taken.wait(5)
    for _ in range(10):
        dispatcher.kick("job")  # queued: the lane waits while a caller's step holds the job
    time.sleep(0.05)
    assert job.runs == []
    finish_step.set()
    caller.join(5)
    assert dispatcher.wait_idle(5)
    assert job.runs == ["job"]


def test_different_jobs_run_on_lanes_of_their_own():
    slow = Job(hold=True)
    quick = Job()

    def run(name: str) -> None:
        (slow if name == "slow" else quick)(name)

    dispatcher = Dispatcher(in_process=lambda: True, publish=pytest.fail, run=run)
    dispatcher.kick("slow")
    assert slow.started.acquire(timeout=5)
    dispatcher.kick("quick")
    assert quick.started.acquire(timeout=5), "a slow job does not hold up another"
    slow.release.set()
    assert dispatcher.wait_idle(5)
    assert (slow.runs, quick.runs) == (["slow"], ["quick"])


def test_a_failing_job_is_logged_and_the_worker_goes_on(caplog):
    job = Job(fail_first=True)
    dispatcher = in_process(job)
    with caplog.at_level(logging.ERROR, logger="choreoscope.dispatch"):
        dispatcher.kick("job")
        assert dispatcher.wait_idle(5)
    assert any("job failed" in record.getMessage() and record.exc_info for record in caplog.records)
    dispatcher.kick("job")
    assert dispatcher.wait_idle(5)
    assert job.runs == ["job", "job"]


def test_the_first_step_runs_in_the_callers_thread_and_the_job_follows_only_when_more_waits():
    job = Job()
    dispatcher = in_process(job)
    callers: list[threading.Thread] = []

    def step(more: bool):
        def take() -> bool:
            callers.append(threading.current_thread())
            return more

        return take

    dispatcher.kick("job", step(False))
    assert dispatcher.wait_idle(5)
    assert callers == [threading.current_thread()] and job.runs == []
    dispatcher.kick("job", step(True))
    assert dispatcher.wait_idle(5)
    assert len(callers) == 2 and job.runs == ["job"]


def test_a_first_step_asked_for_while_the_job_runs_becomes_one_more_run():
    job = Job(hold=True)
    dispatcher = in_process(job)
    dispatcher.kick("job")
    assert job.started.acquire(timeout=5)
    dispatcher.kick("job", pytest.fail)  # not taken inline: the run under way may predate the commit
    job.release.set()
    assert dispatcher.wait_idle(5)
    assert job.runs == ["job", "job"]


def test_a_failing_first_step_is_logged_and_never_reaches_the_caller(caplog):
    def broken() -> bool:
        raise RuntimeError("step broke")

    job = Job()
    dispatcher = in_process(job)
    with caplog.at_level(logging.WARNING, logger="choreoscope.dispatch"):
        dispatcher.kick("job", broken)
    assert "periodic jobs" in caplog.text and "step broke" in caplog.text
    dispatcher.kick("job", lambda: False)  # the job is free again
    assert dispatcher.wait_idle(5)


def test_with_a_broker_kicks_share_one_publication_per_interval_sent_after_the_last_kick():
    published: list[float] = []
    dispatcher = Dispatcher(
        in_process=lambda: False, publish=lambda name: published.append(time.monotonic()), run=pytest.fail, publish_delay=0.05
    )
    start = time.monotonic()
    last_kick = start
    while last_kick - start < 0.3:
        last_kick = time.monotonic()
        dispatcher.kick("tracing.tasks.correlate_pending")
        time.sleep(0.002)
    assert dispatcher.wait_idle(5)
    assert 1 <= len(published) <= 7, "at most one publication per 50 ms, not one per kick"
    # (a little under 50 ms: the publisher notes the time a moment after the flag is cleared)
    assert all(later - earlier >= 0.04 for earlier, later in itertools.pairwise(published))
    assert published[-1] >= last_kick


def test_with_a_broker_a_lone_kick_is_published_after_the_delay():
    published: list[tuple[str, float]] = []
    dispatcher = Dispatcher(
        in_process=lambda: False,
        publish=lambda name: published.append((name, time.monotonic())),
        run=pytest.fail,
        publish_delay=0.05,
    )
    kicked = time.monotonic()
    dispatcher.kick("alerts.tasks.deliver_notifications")
    assert dispatcher.wait_idle(5)
    [(name, at)] = published
    assert name == "alerts.tasks.deliver_notifications" and at - kicked >= 0.045


def test_a_kick_never_fails_its_caller(caplog):
    def broken_mode() -> bool:
        raise RuntimeError("no idea")

    dispatcher = Dispatcher(in_process=broken_mode, publish=pytest.fail, run=pytest.fail)
    with caplog.at_level(logging.WARNING, logger="choreoscope.dispatch"):
        dispatcher.kick("job")
    assert "Could not run job" in caplog.text


def test_a_coalesced_call_runs_once_for_requests_within_its_interval_and_survives_a_failure(caplog):
    calls: list[int] = []

    def call() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("publish broke")

    coalesced = CoalescedCall(0.05, call)
    with caplog.at_level(logging.ERROR, logger="choreoscope.dispatch"):
        for _ in range(5):
            coalesced.request()
        assert coalesced.wait_idle(5)
    assert calls == [1] and "publish broke" in caplog.text
    coalesced.request()
    assert coalesced.wait_idle(5)
    assert calls == [1, 1]


def test_a_task_is_named_by_its_name_or_its_celery_task():
    from choreoscope.dispatch import task_name
    from tracing.tasks import correlate_pending

    assert task_name(correlate_pending) == task_name("tracing.tasks.correlate_pending") == "tracing.tasks.correlate_pending"
