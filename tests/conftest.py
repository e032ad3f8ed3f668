"""Shared fixtures.

In-process tests use pytest-django's test database and Django's test client. End-to-end tests
use ``server``: a real ``manage.py serve`` (uvicorn) in a subprocess with its own database, and
with Redis, a real Celery worker beside it. In the PostgreSQL + Redis phase of ``make test``
(``CHOREOSCOPE_REQUIRE_SERVICES=1``) a test that needs an unreachable service fails instead of
skipping.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.polling import eventually

ROOT = Path(__file__).resolve().parent.parent
# Browser tests leave screenshots of what they saw here (ignored by git); the README's pictures are
# made on purpose by ``python -m tests.pages.screenshots``.
TEST_SCREENSHOTS = ROOT / "var" / "test-screenshots"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
REQUIRE_SERVICES = os.environ.get("CHOREOSCOPE_REQUIRE_SERVICES") == "1"
ADMIN_PASSWORD = "correct-horse-battery-staple"
# Brokers the taps' tests publish to (started by .ci/run); their tests run in the services phase.
BROKERS = {"rabbitmq": ("127.0.0.1", 5672), "nats": ("127.0.0.1", 4222)}


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    database_url, redis_url = os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
    for item in items:
        if "postgres" in item.keywords and not database_url:
            item.add_marker(pytest.mark.skip(reason="needs PostgreSQL: runs in the PostgreSQL + Redis phase of `make test`"))
        if "redis" in item.keywords and not redis_url:
            item.add_marker(pytest.mark.skip(reason="needs Redis: runs in the PostgreSQL + Redis phase of `make test`"))
        for broker, (host, port) in BROKERS.items():
            if broker in item.keywords and not REQUIRE_SERVICES and not (database_url and _reachable(host, port)):
                item.add_marker(pytest.mark.skip(reason=f"needs {broker} on {host}:{port}: runs in the PostgreSQL + Redis phase"))
        if "browser" in item.keywords and not Path(CHROMIUM).exists():
            if REQUIRE_SERVICES or os.environ.get("CI"):
                continue  # the browser fixture fails loudly
            item.add_marker(pytest.mark.skip(reason=f"needs Chromium at {CHROMIUM} (apt-get install chromium)"))


@pytest.fixture(scope="session", autouse=True)
def _a_redis_namespace_per_test_process() -> Iterator[None]:
    """pytest-xdist's workers share one Redis: each gets channel groups and cache keys of its own,
    so that one worker's live messages never reach another worker's sockets."""
    from django.conf import settings
    from django.test import override_settings

    if not settings.REDIS_URL:
        yield
        return
    prefix = f"test-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}-{uuid.uuid4().hex[:6]}"
    configured: dict[str, dict[str, Any]] = settings.CHANNEL_LAYERS
    layers = {
        name: {**layer, "CONFIG": {**layer.get("CONFIG", {}), "prefix": f"{prefix}:asgi"}} for name, layer in configured.items()
    }
    caches = {name: {**cache, "KEY_PREFIX": prefix} for name, cache in settings.CACHES.items()}
    with override_settings(REDIS_PREFIX=prefix, CHANNEL_LAYERS=layers, CACHES=caches):
        yield


@pytest.fixture(autouse=True)
def _tasks_run_in_process(settings):  # type: ignore[no-untyped-def]
    """In-process tests run Celery tasks eagerly whatever the broker; real workers are
    exercised by the end-to-end tests that start one."""
    from choreoscope.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports: the sockets are held open together while the system picks,
    so it cannot hand out the same port twice (closed one by one, it may)."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def wait_for(url: str, timeout: float = 60.0, process: subprocess.Popen[bytes] | None = None) -> None:
    """Until ``url`` answers 200; fails at once when ``process`` (the server) exits first."""
    last_error: list[Exception] = []

    def answers() -> bool:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status == 200
        except Exception as error:
            last_error[:] = [error]
            return False

    eventually(f"{url} answers 200", answers, timeout, explain=lambda: last_error)


@dataclass
class RunningServer:
    url: str
    otlp_url: str
    env: dict[str, str]
    log_path: Path
    grpc_target: str = ""  # host:port of OTLP/gRPC
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def manage(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, text=True, capture_output=True, check=check, timeout=120
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def _create_postgres_database(base_url: str) -> tuple[str, str]:
    import psycopg

    name = f"choreoscope_e2e_{uuid.uuid4().hex[:10]}"
    admin_url = base_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return base_url.rsplit("/", 1)[0] + f"/{name}", name


def _drop_postgres_database(base_url: str, name: str) -> None:
    import psycopg

    admin_url = base_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def celery_worker_command(queue: str, name: str | None = None) -> list[str]:
    """A quiet single-process Celery worker on ``queue`` (``name`` tells several apart)."""
    command = [sys.executable, "-m", "celery", "-A", "choreoscope", "worker", "--pool=solo", "--loglevel=WARNING"]
    command += ["--without-heartbeat", "--without-gossip", "--without-mingle"]
    return command + (["-n", name] if name else []) + ["-Q", queue]


def start_server(tmp: Path, extra_env: dict[str, str] | None = None, worker: bool | None = None) -> RunningServer:
    """A real Choreoscope: migrate, create the admin login, serve; with Redis, a Celery worker."""
    port, otlp_port, grpc_port = free_ports(3)
    env = {
        **os.environ,
        "CHOREOSCOPE_DATA_DIR": str(tmp),
        "PORT": str(port),
        "OTLP_PORT": str(otlp_port),
        "OTLP_GRPC_PORT": str(grpc_port),
        "ADMIN_PASSWORD": ADMIN_PASSWORD,
        "DEMO": "0",
        "CHOREOSCOPE_REDIS_PREFIX": f"test-{uuid.uuid4().hex[:8]}",
        "CHOREOSCOPE_IN_PROCESS_SCHEDULER": "1",
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    log_path = tmp / "server.log"
    server = RunningServer(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{otlp_port}", env, log_path, f"127.0.0.1:{grpc_port}")
    server.manage("migrate", "--noinput")
    server.manage("ensureadmin")
    log = log_path.open("ab")
    web = subprocess.Popen([sys.executable, "manage.py", "serve", "--no-demo"], cwd=ROOT, env=env, stdout=log, stderr=log)
    server.processes.append(web)
    if worker if worker is not None else bool(env.get("REDIS_URL")):
        worker_command = celery_worker_command(env["CHOREOSCOPE_REDIS_PREFIX"])
        server.processes.append(subprocess.Popen(worker_command, cwd=ROOT, env=env, stdout=log, stderr=log))
    try:
        wait_for(f"{server.url}/healthz", process=web)
    except Exception:
        stop_server(server)
        raise RuntimeError(f"the server did not start:\n{server.log()}") from None
    return server


def stop_server(server: RunningServer) -> None:
    for process in server.processes:
        process.terminate()
    for process in server.processes:
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


@contextmanager
def server_of_its_own(tmp: Path) -> Iterator[RunningServer]:
    """A real server on a database of its own (a fresh PostgreSQL database when DATABASE_URL is
    set), stopped and its database dropped afterwards."""
    extra: dict[str, str] = {}
    pg_name = None
    base_url = os.environ.get("DATABASE_URL")
    if base_url:
        extra["DATABASE_URL"], pg_name = _create_postgres_database(base_url)
    running = start_server(tmp, extra)
    try:
        yield running
    finally:
        stop_server(running)
        if base_url and pg_name:
            _drop_postgres_database(base_url, pg_name)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with server_of_its_own(tmp_path_factory.mktemp("server")) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Chromium for one test module. Playwright's sync API keeps an event loop running in the
    thread while it is open; closing it with the module, before a test of another module runs
    in the same process, leaves ``asyncio.run`` usable for those tests."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: apt-get install -y chromium")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def log_in(page: Any, base_url: str) -> None:
    """Log a Playwright page in as the admin the server was started with."""
    page.goto("/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/")


@pytest.fixture
def page(browser, server):  # type: ignore[no-untyped-def]
    """A logged-in Chromium page on the running server."""
    context = browser.new_context(base_url=server.url, viewport={"width": 1360, "height": 860})
    page = context.new_page()
    log_in(page, server.url)
    yield page
    context.close()
