"""Run the benchmarks: ``python -m bench`` runs every ``bench/<name>.py`` that defines ``main()``;
``python -m bench NAME [NAME ...]`` runs those only; ``python -m bench --list`` names them.

Each ``main()`` returns a JSON-serialisable dict of results (or None). The harness stamps it with
the time, the machine and the git commit, and writes ``bench/results/<name>.json`` (the latest)
and ``bench/results/<name>-<UTC timestamp>.json`` (the history).
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"


def available() -> list[str]:
    names = []
    for path in sorted(BENCH_DIR.glob("*.py")):
        if path.stem.startswith("_"):
            continue
        if "def main(" in path.read_text():
            names.append(path.stem)
    return names


def commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=BENCH_DIR, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run(name: str) -> dict[str, Any]:
    module = importlib.import_module(f"bench.{name}")
    started = time.monotonic()
    results = module.main() or {}
    now = datetime.datetime.now(datetime.UTC)
    record = {
        "benchmark": name,
        "finished_at": now.isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - started, 1),
        "commit": commit(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "results": results,
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    text = json.dumps(record, indent=2, sort_keys=False) + "\n"
    (RESULTS_DIR / f"{name}.json").write_text(text)
    (RESULTS_DIR / f"{name}-{now.strftime('%Y%m%dT%H%M%SZ')}.json").write_text(text)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--list", action="store_true", help="name the benchmarks and exit")
    options = parser.parse_args(argv)
    names = available()
    if options.list:
        print("\n".join(names))
        return 0
    unknown = sorted(set(options.names) - set(names))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(names)}")
    failed = 0
    for name in options.names or names:
        print(f"== {name}", flush=True)
        try:
            record = run(name)
        except Exception as error:  # one broken benchmark must not hide the others' results
            failed += 1
            print(f"{name} failed: {error!r}", file=sys.stderr, flush=True)
            continue
        print(json.dumps(record["results"], indent=2), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
