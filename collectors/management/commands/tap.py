"""``python manage.py tap redis-stream|rabbitmq|nats …``: ingest CloudEvents from an event bus."""

from __future__ import annotations

import signal
import socket
from argparse import RawDescriptionHelpFormatter
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from collectors.taps.base import Tap
from collectors.taps.nats import DEFAULT_DURABLE, NatsTap
from collectors.taps.rabbitmq import DEFAULT_QUEUE, RabbitTap
from collectors.taps.redis_streams import StreamTap
from tracing.store import store_observations

HELP = """Read CloudEvents from an event bus and store them, as one more reader beside the services.

Every tap stores a batch in one transaction and acknowledges it only after the commit; after a
restart it reads again what it had not acknowledged (the store keeps one copy). A message that
is not a valid CloudEvent is reported on stderr, with why, and the tap goes on. A lost
connection is retried with exponential backoff. `manage.py tap KIND --help` tells more.
"""

REDIS_HELP = """Read CloudEvents from Redis Streams through a consumer group.

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

RABBITMQ_HELP = f"""Read CloudEvents published to RabbitMQ exchanges.

The tap binds a durable queue of its own (--queue, default {DEFAULT_QUEUE}) to each exchange with
--binding-key, so the services' own queues still get every message. CloudEvents AMQP binding:
binary mode (attributes in "cloudEvents:<name>" application properties, the data in the body,
its media type in content_type) or structured mode (content_type application/cloudevents+json).
A "traceparent" header links the event to the span that sent it. Messages are acknowledged after
they are stored; an invalid one is rejected without requeue (dead-lettered if the queue says so).
"""

NATS_HELP = f"""Read CloudEvents from NATS JetStream streams.

The tap reads each stream through a durable pull consumer of its own (--durable, default
{DEFAULT_DURABLE}), so the services' consumers still get every message. CloudEvents NATS binding:
binary mode ("ce-<name>" headers, the data in the payload, its media type in Content-Type) or
structured mode (the event as JSON in the payload). A "traceparent" header links the event to the
span that sent it. Messages are acknowledged after they are stored; an invalid one is terminated.
"""


class Command(BaseCommand):
    help = HELP

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        return super().create_parser(prog_name, subcommand, formatter_class=RawDescriptionHelpFormatter, **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        kinds = parser.add_subparsers(dest="source", required=True, metavar="KIND", title="kinds of bus")
        redis = kinds.add_parser(
            "redis-stream", help="Redis Streams", description=REDIS_HELP, formatter_class=RawDescriptionHelpFormatter
        )
        redis.add_argument("streams", nargs="+", metavar="STREAM")
        redis.add_argument("--redis-url", default=settings.REDIS_URL, help="default: REDIS_URL")
        redis.add_argument("--group", default="choreoscope", help="consumer group (created when missing)")
        redis.add_argument("--consumer", default=socket.gethostname(), help="consumer name; keep it stable across restarts")
        redis.add_argument(
            "--start",
            choices=["earliest", "latest"],
            default="earliest",
            help="where a new consumer group starts reading (default: earliest)",
        )
        redis.add_argument(
            "--claim-idle", type=float, default=60.0, help="seconds before another consumer's pending entries are claimed"
        )

        rabbitmq = kinds.add_parser(
            "rabbitmq", help="RabbitMQ exchanges", description=RABBITMQ_HELP, formatter_class=RawDescriptionHelpFormatter
        )
        rabbitmq.add_argument("exchanges", nargs="+", metavar="EXCHANGE")
        rabbitmq.add_argument("--url", default=settings.RABBITMQ_URL, help="default: CHOREOSCOPE_RABBITMQ_URL")
        rabbitmq.add_argument("--binding-key", default="#", help="binding key to each exchange (default: #, everything)")
        rabbitmq.add_argument("--queue", default=DEFAULT_QUEUE, help="the tap's durable queue; keep it stable across restarts")

        nats = kinds.add_parser(
            "nats", help="NATS JetStream streams", description=NATS_HELP, formatter_class=RawDescriptionHelpFormatter
        )
        nats.add_argument("streams", nargs="+", metavar="STREAM")
        nats.add_argument("--url", default=settings.NATS_URL, help="default: CHOREOSCOPE_NATS_URL")
        nats.add_argument("--durable", default=DEFAULT_DURABLE, help="the tap's durable consumer; keep it stable across restarts")

        for kind in (redis, rabbitmq, nats):
            kind.add_argument("--batch", type=int, default=500, help="messages per read and per database write")
            kind.add_argument("--block", type=float, default=2.0, help="seconds to wait for new messages per read")
            kind.add_argument("--exit-when-idle", action="store_true", help="stop once no message arrives within --block seconds")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch"] < 1 or options["block"] <= 0:
            raise CommandError("--batch must be at least 1 and --block above 0.")
        report = lambda message: self.stderr.write(f"tap: {message}")  # noqa: E731
        stopping: list[int] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda number, frame: stopping.append(number))
        tap, closing, banner = self._tap(options, report)
        self.stdout.write(banner)
        try:
            tap.run(should_stop=lambda: bool(stopping), exit_when_idle=options["exit_when_idle"])
        finally:
            closing()
        self.stdout.write(f"Stored {tap.stored} event(s), rejected {tap.rejected}.")

    def _tap(self, options: dict[str, Any], report: Any) -> tuple[Tap, Any, str]:
        """The tap ``options`` ask for, what closes its resources, and what to say when it starts."""
        common = {"store": store_observations, "report": report, "batch_size": options["batch"]}
        if options["source"] == "rabbitmq":
            rabbit = RabbitTap(
                url=options["url"],
                exchanges=options["exchanges"],
                queue=options["queue"],
                binding_key=options["binding_key"],
                block_seconds=options["block"],
                **common,
            )
            exchanges = ", ".join(options["exchanges"])
            return rabbit, lambda: None, f"Tapping exchange(s) {exchanges} through queue {options['queue']}."
        if options["source"] == "nats":
            nats = NatsTap(
                url=options["url"],
                streams=options["streams"],
                durable=options["durable"],
                block_seconds=options["block"],
                **common,
            )
            streams = ", ".join(options["streams"])
            return nats, lambda: None, f"Tapping stream(s) {streams} as durable consumer {options['durable']}."
        import redis

        if not options["redis_url"]:
            raise CommandError("No Redis to read from: set REDIS_URL or pass --redis-url redis://host:6379/0.")
        client = redis.Redis.from_url(options["redis_url"])
        stream_tap = StreamTap(
            client=client,
            streams=options["streams"],
            group=options["group"],
            consumer=options["consumer"],
            block_ms=int(options["block"] * 1000),
            claim_idle_ms=int(options["claim_idle"] * 1000),
            start_id="0" if options["start"] == "earliest" else "$",
            **common,
        )
        banner = f"Tapping {', '.join(options['streams'])} as {options['consumer']} of group {options['group']}."
        return stream_tap, client.close, banner
