"""Taps: Choreoscope as one more reader of the services' event bus (Redis Streams, RabbitMQ,
NATS JetStream). Each reads through a consumer, queue or group of its own, so the services keep
every message; decodes CloudEvents in the protocol's binding; stores a batch in one transaction
and acknowledges only after the commit (at least once; the store is idempotent); rejects what
is not a valid CloudEvent, saying why; reconnects with backoff (``base.Tap.run``)."""
