"""``python manage.py tap redis-stream STREAM [STREAM ...]``: ingest CloudEvents from an event bus."""

from __future__ import annotations

import signal
import socket
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from collectors.taps.redis_streams import StreamTap
from tracing.store import store_observations

HELP = """Read CloudEvents from Redis Streams through a consumer group and store them.

Each stream entry holds either a structured CloudEvent (JSON) in one field named "cloudevent" or
"event", e.g.  XADD orders * cloudevent '{"specversion":"1.0","id":"1","source":"/checkout",...}'
or one field per attribute: specversion, id, source, type, and optionally time, subject,
datacontenttype, dataschema, extensions (correlationid, causationid, traceparent, ...), with the
payload in "data" (JSON when datacontenttype says so) or "data_base64", e.g.
  XADD orders * specversion 1.0 id 1 source /checkout type OrderCreated correlationid order-1 data '{"order_id":1}'

Entries are acknowledged only after they are stored; after a restart the tap first re-reads what
it had read but not acknowledged, and claims entries another consumer left pending for longer
than --claim-idle. Invalid entries are reported on stderr and acknowledged; the tap goes on.
"""


class Command(BaseCommand):
    help = HELP

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        from argparse import RawDescriptionHelpFormatter

        return super().create_parser(prog_name, subcommand, formatter_class=RawDescriptionHelpFormatter, **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("source", choices=["redis-stream"], help="the kind of bus to read")
        parser.add_argument("streams", nargs="+", metavar="STREAM")
        parser.add_argument("--redis-url", default=settings.REDIS_URL, help="default: REDIS_URL")
        parser.add_argument("--group", default="choreoscope", help="consumer group (created when missing)")
        parser.add_argument("--consumer", default=socket.gethostname(), help="consumer name; keep it stable across restarts")
        parser.add_argument(
            "--start",
            choices=["earliest", "latest"],
            default="earliest",
            help="where a new consumer group starts reading (default: earliest)",
        )
        parser.add_argument("--batch", type=int, default=500, help="entries per read and per database write")
        parser.add_argument(
            "--claim-idle", type=float, default=60.0, help="seconds before another consumer's pending entries are claimed"
        )
        parser.add_argument("--exit-when-idle", action="store_true", help="stop once no new entry arrives within --block seconds")
        parser.add_argument("--block", type=float, default=2.0, help="seconds to wait for new entries per read")

    def handle(self, *args: Any, **options: Any) -> None:
        import redis

        if not options["redis_url"]:
            raise CommandError("No Redis to read from: set REDIS_URL or pass --redis-url redis://host:6379/0.")
        client = redis.Redis.from_url(options["redis_url"])
        stopping: list[int] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda number, frame: stopping.append(number))
        tap = StreamTap(
            client=client,
            streams=options["streams"],
            group=options["group"],
            consumer=options["consumer"],
            store=store_observations,
            report=lambda message: self.stderr.write(f"tap: {message}"),
            batch_size=options["batch"],
            block_ms=int(options["block"] * 1000),
            claim_idle_ms=int(options["claim_idle"] * 1000),
            start_id="0" if options["start"] == "earliest" else "$",
        )
        self.stdout.write(f"Tapping {', '.join(options['streams'])} as {options['consumer']} of group {options['group']}.")
        try:
            tap.run(should_stop=lambda: bool(stopping), exit_when_idle=options["exit_when_idle"])
        finally:
            client.close()
        self.stdout.write(f"Stored {tap.stored} event(s), rejected {tap.rejected}.")
