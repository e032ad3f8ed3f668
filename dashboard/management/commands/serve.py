"""Serve everything from one process: pages, JSON API, WebSockets and ingestion on PORT,
OTLP/HTTP on OTLP_PORT too (4318, the OpenTelemetry SDKs' default), and OTLP/gRPC on
OTLP_GRPC_PORT (4317), so an instrumented service needs no configuration. In the embedded
default it also runs the periodic jobs; with DEMO=1 it starts the demo shop as a separate
process once the server answers.

On Ctrl-C the demo stops first, while the server still takes what it flushes (its last spans and
events), and then the server: the demo runs in a session of its own so that the terminal's
interrupt reaches the server alone, and it stops by itself if the server dies without stopping it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from types import FrameType
from typing import Any

import uvicorn
from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.module_loading import import_string
from uvicorn.supervisors import Multiprocess


def listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        raise CommandError(f"Cannot listen on {host}:{port}: {error.strerror}. Set PORT or OTLP_PORT to a free port.") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def wait_until_serving(url: str, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - our own http:// URL
                return True
        except Exception:
            time.sleep(0.3)
    return False


class Command(BaseCommand):
    help = "Serve Choreoscope (HTTP + WebSockets + OTLP) with uvicorn."
    # Django's default, stated because serving depends on it: the system checks run before
    # ``handle``, so a broken CHOREOSCOPE_FLOWS file stops the server with the line at fault.
    requires_system_checks = "__all__"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=settings.BIND_HOST)
        parser.add_argument("--port", type=int, default=settings.PORT)
        parser.add_argument("--otlp-port", type=int, default=settings.OTLP_PORT, help="0 disables the extra OTLP listener.")
        parser.add_argument(
            "--otlp-grpc-port", type=int, default=settings.OTLP_GRPC_PORT, help="OTLP/gRPC (traces, logs); 0 disables it."
        )
        parser.add_argument("--demo", action=argparse_bool(), default=settings.DEMO)
        parser.add_argument(
            "--workers",
            type=int,
            default=settings.WEB_CONCURRENCY,
            help="Server processes sharing the listening sockets (needs REDIS_URL when above 1).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        host, port, otlp_port, workers = options["host"], options["port"], options["otlp_port"], options["workers"]
        if workers < 1:
            raise CommandError("--workers must be at least 1.")
        if workers > 1 and not settings.REDIS_URL:
            # The in-memory channel layer and in-process tasks live in one process; several
            # processes need Redis to share live updates and work.
            raise CommandError("--workers above 1 needs REDIS_URL; the embedded mode serves from one process.")
        if options["demo"] and not apps.is_installed("demo"):
            raise CommandError("--demo needs the demo app, which production settings (CHOREOSCOPE_ENV=production) leave out.")
        sockets = [listening_socket(host, port)]
        if otlp_port and otlp_port != port:
            sockets.append(listening_socket(host, otlp_port))
        grpc_server = start_grpc(host, options["otlp_grpc_port"], taken={port, otlp_port})

        from choreoscope.scheduler import start_if_configured

        scheduler = start_if_configured()

        local_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104 - a comparison, not a bind
        base_url = f"http://{local_host}:{port}"
        demo = DemoProcess(base_url, otlp_port or port) if options["demo"] else None
        if demo:
            threading.Thread(target=demo.start_when_ready, daemon=True).start()

        also = [f"OTLP/HTTP also on :{otlp_port}"] if len(sockets) > 1 else []
        also += [f"OTLP/gRPC on :{options['otlp_grpc_port']}"] if grpc_server else []
        self.stdout.write(f"Choreoscope on {base_url}/" + (f"  ({', '.join(also)})" if also else ""))
        config = uvicorn.Config(
            "choreoscope.asgi:application",
            log_level=settings.LOG_LEVEL.lower(),
            lifespan="off",
            access_log=False,
            workers=workers,
            # The client address (log-in throttling) comes from X-Forwarded-For only when it is
            # sent by a proxy named in CHOREOSCOPE_TRUSTED_PROXIES, never by default.
            proxy_headers=bool(settings.TRUSTED_PROXIES),
            forwarded_allow_ips=settings.TRUSTED_PROXIES or None,
        )
        metrics_dir = shared_metrics_dir() if workers > 1 and not settings.METRICS_MULTIPROC_DIR else None
        try:
            if workers > 1:
                # Every worker accepts on the same inherited sockets; the kernel spreads connections.
                Multiprocess(config, sockets=sockets).run()
            else:
                Server(config, before_exit=demo.stop if demo else None).run(sockets=sockets)
        finally:
            if demo:
                demo.stop()
            if grpc_server:
                # Calls in progress finish (and commit) before the process ends.
                grpc_server.stop(grace=10).wait()
            if scheduler:
                scheduler.stop()
            if metrics_dir:
                shutil.rmtree(metrics_dir, ignore_errors=True)


def shared_metrics_dir() -> str:
    """A directory where the workers keep their counters, so that a scrape answered by any one of
    them shows the sum (prometheus_client's multiprocess mode); the spawned workers inherit it."""
    directory = tempfile.mkdtemp(prefix="choreoscope-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    return directory


def start_grpc(host: str, port: int, taken: set[int]) -> Any:
    """The OTLP/gRPC server (``settings.OTLP_GRPC_SERVER``) on ``port``, or None when it is 0."""
    if not port:
        return None
    if port in taken:
        raise CommandError(f"OTLP_GRPC_PORT {port} is already PORT or OTLP_PORT; give gRPC a port of its own (or 0).")
    start = import_string(settings.OTLP_GRPC_SERVER)
    try:
        return start(host, port, settings.MAX_BODY_BYTES)
    except OSError as error:
        raise CommandError(f"{error} Set OTLP_GRPC_PORT to a free port, or 0 to disable OTLP/gRPC.") from None


class Server(uvicorn.Server):
    """uvicorn's server, which on a signal first runs ``before_exit`` (in a thread: it may take
    seconds, and requests keep being served meanwhile) and then shuts down. A second signal
    shuts down at once."""

    def __init__(self, config: uvicorn.Config, before_exit: Callable[[], None] | None = None) -> None:
        super().__init__(config)
        self.before_exit = before_exit
        self.exiting = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.before_exit is None or self.exiting:
            super().handle_exit(sig, frame)
            return
        self.exiting = True
        threading.Thread(target=self._exit_after, args=(self.before_exit, sig, frame), name="before-exit", daemon=True).start()

    def _exit_after(self, before_exit: Callable[[], None], sig: int, frame: FrameType | None) -> None:
        try:
            before_exit()
        finally:
            if not self.should_exit:
                super().handle_exit(sig, frame)


class DemoProcess:
    def __init__(self, base_url: str, otlp_port: int) -> None:
        self.base_url = base_url
        self.otlp_port = otlp_port
        self.process: subprocess.Popen[bytes] | None = None
        self._stopping = False

    def start_when_ready(self) -> None:
        if not wait_until_serving(f"{self.base_url}/healthz") or self._stopping:
            return
        env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": self.base_url.rsplit(":", 1)[0] + f":{self.otlp_port}"}
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "demo", "--target", self.base_url, "--parent", str(os.getpid())],
            env=env,
            start_new_session=True,
        )

    def stop(self) -> None:
        self._stopping = True
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def argparse_bool() -> Any:
    import argparse

    return argparse.BooleanOptionalAction
