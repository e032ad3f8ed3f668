"""``serve`` with the demo, as ``make run`` starts it: an interrupt to the terminal's process group
stops the demo first, whose last orders are all stored, then the server; and a demo whose server
died without stopping it stops by itself."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ADMIN_PASSWORD, ROOT, free_ports, wait_for
from tests.polling import eventually


def embedded_env(tmp_path: Path) -> dict[str, str]:
    port, otlp_port, grpc_port = free_ports(3)
    env = {
        **os.environ,
        "CHOREOSCOPE_DATA_DIR": str(tmp_path),
        "PORT": str(port),
        "OTLP_PORT": str(otlp_port),
        "OTLP_GRPC_PORT": str(grpc_port),
        "ADMIN_PASSWORD": ADMIN_PASSWORD,
        "PYTHONUNBUFFERED": "1",
    }
    for name in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        env.pop(name, None)
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, check=True, capture_output=True)
    return env


def stored_count(env: dict[str, str], name: str) -> int:
    code = f"from tracing.models import Observation; print(Observation.objects.filter(name={name!r}).count())"
    out = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=env, check=True, capture_output=True)
    return int(out.stdout.split()[-1])


def wait_for_exit(process: subprocess.Popen[bytes], seconds: float) -> int:
    try:
        return process.wait(seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        raise


def test_an_interrupt_stops_the_demo_first_and_keeps_its_last_orders(tmp_path):
    env = embedded_env(tmp_path)
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        # A session of its own stands for the terminal: the interrupt goes to its whole group.
        serve = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--demo"], cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True
        )
        try:
            wait_for(f"http://127.0.0.1:{env['PORT']}/healthz", process=serve)
            eventually("the demo's checkout is up", lambda: "checkout is up" in log_path.read_text(), 30)
            time.sleep(4)  # a few orders, some of them in flight when the interrupt comes
            os.killpg(serve.pid, signal.SIGINT)
            # uvicorn re-raises the signal once it has shut down, so the status says SIGINT.
            assert wait_for_exit(serve, 40) in (0, -signal.SIGINT)
        finally:
            if serve.poll() is None:
                os.killpg(serve.pid, signal.SIGKILL)
    output = log_path.read_text()
    assert "Finished server process" in output
    stopped = re.search(r"Demo shop stopped after (\d+) orders", output)
    assert stopped, output
    assert output.index("Demo shop stopped") < output.index("Shutting down")
    assert "Failed to export" not in output
    orders = int(stopped.group(1))
    assert orders >= 3
    assert stored_count(env, "OrderCreated") == orders


def test_a_demo_whose_server_is_gone_stops_by_itself(tmp_path):
    env = embedded_env(tmp_path)
    # A parent that starts the demo and dies at once, as a killed server would.
    launcher = (
        "import subprocess, sys; "
        "import os; p = subprocess.Popen([sys.executable, 'manage.py', 'demo', '--target', 'http://127.0.0.1:9', "
        "'--parent', str(os.getpid())], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); print(p.pid)"
    )
    out = subprocess.run([sys.executable, "-c", launcher], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    demo_pid = int(out.stdout.split()[-1])
    try:
        eventually("the orphaned demo stops by itself", lambda: not running(demo_pid), 30)
    finally:
        if running(demo_pid):
            os.kill(demo_pid, signal.SIGKILL)


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's exit is reaped by whatever adopted it, maybe late)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status
