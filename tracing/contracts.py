"""Declared contracts (AsyncAPI 3 documents, ``tracing.asyncapi``) against what runs.

The declared map is who sends and who receives which message on which channel. It feeds the
flow definitions (``declared_flow_definitions``, merged into ``tracing.flowconfig``'s
configuration): a message's ``correlationId`` location becomes a key path, and a declared
receiver of a message, with the reply it sends, becomes a declared expectation.

``contract_drift`` compares the declared map with the observed one (``tracing.topology``'s rows)
and lists, per edge, what disagrees and which party is at fault:

- ``declared_not_observed``: a declared sender that sent nothing in the window (party: the
  sender), or a declared receiver that never reacted to a message others did send (party: the
  receiver);
- ``undeclared``: a service sending a message its document does not declare, or consuming one
  it does not declare receiving (party: that service);
- ``schema_violation``: events whose data breaks a declared payload schema (party: the sender;
  ``consumer`` names the receiver whose document declared the schema, '' for the sender's own).

Payloads are checked on a sample: the newest ``PAYLOAD_SAMPLE`` events of each sender and message
in the window, so ``count`` of a violation row counts invalid events among those.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone
from jsonschema import Draft7Validator
from jsonschema.exceptions import best_match

from tracing.asyncapi import Application, Message, parse_asyncapi, payload_validator
from tracing.flowconfig import ExpectedSteps, FlowsConfig, FlowType, StepRef, parse_duration
from tracing.topology import earliest_reactions, window_observations

log = logging.getLogger(__name__)

PAYLOAD_SAMPLE = 200
DEFAULT_WITHIN = "2m"  # a declared reaction's deadline when its operation gives no x-within
KINDS = ("schema_violation", "undeclared", "declared_not_observed")


# --- The declared map ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DeclaredMap:
    """Per (service, message): the channel, for what each service declares sending and receiving."""

    sends: dict[tuple[str, str], str] = field(default_factory=dict)
    receives: dict[tuple[str, str], str] = field(default_factory=dict)

    def channel_of(self, message: str) -> str:
        for (_, name), channel in (*self.sends.items(), *self.receives.items()):
            if name == message:
                return channel
        return ""

    def senders_of(self, message: str) -> list[str]:
        return sorted(service for service, name in self.sends if name == message)


def declared_map(applications: Iterable[Application]) -> DeclaredMap:
    declared = DeclaredMap()
    for app in applications:
        for message in app.sends:
            declared.sends.setdefault((app.service, message.name), message.channel)
        for receive in app.receives:
            declared.receives.setdefault((app.service, receive.message.name), receive.message.channel)
    return declared


# --- Feeding the flow definitions ---------------------------------------------------------------


def _reactions(applications: Sequence[Application]) -> list[tuple[str, str, str, Any]]:
    """(message received, service, reply sent, within) for every declared reaction."""
    found = []
    for app in applications:
        received = {r.message.name for r in app.receives}
        for receive in app.receives:
            # Without a declared reply, a service receiving one message and sending one reacts with it.
            replies = receive.replies or (tuple(m.name for m in app.sends) if len(received) == len(app.sends) == 1 else ())
            found += [(receive.message.name, app.service, reply, receive.within) for reply in replies]
    return found


def _roots(reactions: list[tuple[str, str, str, Any]], sent: set[str]) -> dict[str, set[str]]:
    """Each message that nothing declared causes (a flow's start), with every message it leads to."""
    follows: dict[str, set[str]] = defaultdict(set)
    for after, _, reply, _ in reactions:
        follows[after].add(reply)
    caused = {reply for _, _, reply, _ in reactions}
    reach: dict[str, set[str]] = {}
    for root in sorted((sent | set(follows)) - caused):
        seen, todo = {root}, [root]
        while todo:
            for nxt in follows.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        reach[root] = seen
    return reach


def declared_flow_definitions(applications: Sequence[Application]) -> FlowsConfig:
    """Flow types from the documents: one per start message (a message no declared reaction
    sends), named after it as an undeclared flow's type is, with the key paths of its messages'
    correlation ids and an expectation per declared reaction."""
    reactions = _reactions(applications)
    sent = {m.name for app in applications for m in app.sends}
    key_paths: dict[str, list[str]] = defaultdict(list)
    for app in applications:
        for message in (*app.sends, *(r.message for r in app.receives)):
            if message.correlation_path and message.correlation_path not in key_paths[message.name]:
                key_paths[message.name].append(message.correlation_path)
    types = []
    for root, messages in _roots(reactions, sent).items():
        expectations = tuple(
            ExpectedSteps(StepRef(after), (StepRef(reply, service),), _within(within, service, after))
            for after, service, reply, within in reactions
            if after in messages
        )
        paths = tuple(dict.fromkeys(path for name in sorted(messages) for path in key_paths[name]))
        if expectations or paths:
            types.append(FlowType(root, key_paths=paths, start=frozenset({root}), expectations=expectations))
    return FlowsConfig(tuple(types))


def _within(value: Any, service: str, after: str) -> float:
    return parse_duration(value if value is not None else DEFAULT_WITHIN, f"AsyncAPI of {service}, receive {after}, x-within")


def merged_definitions(written: FlowsConfig, declared: FlowsConfig) -> FlowsConfig:
    """The flow definitions file wins: a declared type whose start message a written type
    mentions adds to it only the key paths and expectations it lacks."""
    types = list(written.types)
    for derived in declared.types:
        index = next((i for i, t in enumerate(types) if any(t.mentions(name) for name in derived.start)), None)
        if index is None:
            types.append(derived)
            continue
        target = types[index]
        known = {(e.after.name, step) for e in target.expectations for step in e.steps}
        extra = tuple(e for e in derived.expectations if (e.after.name, e.steps[0]) not in known)
        paths = tuple(dict.fromkeys((*target.key_paths, *derived.key_paths)))
        types[index] = replace(target, key_paths=paths, expectations=target.expectations + extra)
    return FlowsConfig(tuple(types))


# --- Drift ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tally:
    count: int
    example_flow: int | None = None
    detail: str = ""  # for invalid payloads: what the first one breaks


@dataclass(frozen=True)
class ObservedTraffic:
    """What ran in a window: events per (producer, type); reactions per (producer, type,
    consumer); invalid payloads per (producer, type, declaring service)."""

    produced: dict[tuple[str, str], Tally] = field(default_factory=dict)
    reactions: dict[tuple[str, str, str], Tally] = field(default_factory=dict)
    violations: dict[tuple[str, str, str], Tally] = field(default_factory=dict)


@dataclass(frozen=True)
class DriftRow:
    kind: str
    channel: str
    message: str
    producer: str
    consumer: str
    party: str
    count: int
    example_flow: int | None = None
    detail: str = ""  # for schema violations: what the example breaks, for the page


def _undeclared(declared: DeclaredMap, observed: ObservedTraffic) -> list[DriftRow]:
    rows = []
    for (producer, message), tally in observed.produced.items():
        if (producer, message) not in declared.sends:
            channel = declared.channel_of(message)
            rows.append(DriftRow("undeclared", channel, message, producer, "", producer, tally.count, tally.example_flow))
    for (producer, message, consumer), tally in observed.reactions.items():
        if (consumer, message) not in declared.receives:
            channel = declared.channel_of(message)
            rows.append(DriftRow("undeclared", channel, message, producer, consumer, consumer, tally.count, tally.example_flow))
    return rows


def _silent(declared: DeclaredMap, observed: ObservedTraffic) -> list[DriftRow]:
    rows = []
    for (producer, message), channel in declared.sends.items():
        if (producer, message) not in observed.produced:
            rows.append(DriftRow("declared_not_observed", channel, message, producer, "", producer, 0))
    for (consumer, message), channel in declared.receives.items():
        if (consumer, message) in declared.sends:
            continue  # a service consuming its own message: its reactions are internal steps
        producers = [p for (p, name) in observed.produced if name == message and p != consumer]
        if not producers and not declared.senders_of(message):
            rows.append(DriftRow("declared_not_observed", channel, message, "", consumer, consumer, 0))
        for producer in producers:
            if (producer, message, consumer) not in observed.reactions:
                missed = observed.produced[(producer, message)]
                row = DriftRow("declared_not_observed", channel, message, producer, consumer, consumer, missed.count)
                rows.append(replace(row, example_flow=missed.example_flow))
    return rows


def _schema_violations(declared: DeclaredMap, observed: ObservedTraffic) -> list[DriftRow]:
    rows = []
    for (producer, message, declarer), tally in observed.violations.items():
        consumer = declarer if declarer != producer else ""
        row = DriftRow("schema_violation", declared.channel_of(message), message, producer, consumer, producer, tally.count)
        rows.append(replace(row, example_flow=tally.example_flow, detail=tally.detail))
    return rows


def contract_drift(declared: DeclaredMap, observed: ObservedTraffic) -> list[DriftRow]:
    """Every disagreement, ordered by kind, message, producer and consumer."""
    rows = _schema_violations(declared, observed) + _undeclared(declared, observed) + _silent(declared, observed)
    return sorted(rows, key=lambda r: (KINDS.index(r.kind), r.message, r.producer, r.consumer))


# --- Payload schemas --------------------------------------------------------------------------


@dataclass(frozen=True)
class PayloadSchema:
    service: str  # the application whose document declares it
    message: str
    validator: Draft7Validator


def payload_schemas(applications: Iterable[Application]) -> dict[str, list[PayloadSchema]]:
    """Per message, each distinct declared payload schema with the service that declared it."""
    found: dict[str, list[PayloadSchema]] = defaultdict(list)
    for app in applications:
        seen: set[str] = set()
        messages: list[Message] = [*app.sends, *(r.message for r in app.receives)]
        for message in messages:
            validator = payload_validator(app, message)
            if validator is not None and message.name not in seen:
                seen.add(message.name)
                found[message.name].append(PayloadSchema(app.service, message.name, validator))
    return found


def invalid_payloads(schemas: Sequence[PayloadSchema], samples: Iterable[tuple[Any, int | None]]) -> dict[str, Tally]:
    """Per declaring service, how many sampled payloads (data, flow id) its schema refuses."""
    counts: dict[str, int] = defaultdict(int)
    examples: dict[str, tuple[int | None, str]] = {}
    for data, flow_id in samples:
        for schema in schemas:
            if not schema.validator.is_valid(data):
                counts[schema.service] += 1
                if schema.service not in examples:
                    examples[schema.service] = (flow_id, payload_problem(schema.validator, data))
    return {service: Tally(count, *examples[service]) for service, count in counts.items()}


def payload_problem(validator: Draft7Validator, data: Any) -> str:
    """What an invalid payload breaks, as a person reads it: ``/total: 'x' is not of type 'number'``."""
    error = best_match(validator.iter_errors(data))
    if error is None:
        return ""
    where = "/" + "/".join(str(part) for part in error.absolute_path)
    return f"{where}: {error.message[:200]}"


# --- Loading the documents ---------------------------------------------------------------------


def document_paths(patterns: Iterable[str]) -> list[str]:
    """The files that ``CHOREOSCOPE_ASYNCAPI``'s comma-separated names and globs name; a name
    that matches nothing is refused, so a typo does not silently declare nothing."""
    paths: list[str] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not matches or not all(os.path.isfile(path) for path in matches):
            raise ImproperlyConfigured(f"CHOREOSCOPE_ASYNCAPI: {pattern!r} names no readable file.")
        paths += [path for path in matches if path not in paths]
    return paths


def read_document_files(patterns: Iterable[str]) -> list[Application]:
    applications = []
    for path in document_paths(patterns):
        try:
            text = Path(path).read_bytes()
        except OSError as error:
            raise ImproperlyConfigured(f"CHOREOSCOPE_ASYNCAPI={path}: cannot read it ({error.strerror}).") from None
        applications.append(parse_asyncapi(text, path))
    return _one_per_service(applications)


def _one_per_service(applications: list[Application]) -> list[Application]:
    by_service: dict[str, Application] = {}
    for app in applications:
        if app.service in by_service:
            raise ImproperlyConfigured(
                f"{app.source}: the service {app.service!r} is already described by {by_service[app.service].source}; "
                "one document per application."
            )
        by_service[app.service] = app
    return list(by_service.values())


def uploaded_applications() -> list[Application]:
    """The documents uploaded in the admin (checked when saved; one broken since is skipped)."""
    from tracing.models import ContractDocument

    applications = []
    for name, text in ContractDocument.objects.order_by("name").values_list("name", "document"):
        try:
            applications.append(parse_asyncapi(text, f"uploaded document {name!r}"))
        except ImproperlyConfigured as error:
            log.error("%s Skipping it.", error)
    return applications


@dataclass(frozen=True)
class _Loaded:
    stamp: tuple[Any, ...]
    applications: tuple[Application, ...]
    checked_at: float
    problem: str = ""  # why the documents as they are now could not be read


_loaded: _Loaded | None = None
RECHECK_SECONDS = 5.0  # how often the files' stamps and the uploaded rows are looked at again


def _stamp(patterns: Sequence[str]) -> tuple[Any, ...]:
    from tracing.models import ContractDocument

    files: list[tuple[str, int | None, int | None]] = []
    for pattern in patterns:
        for path in sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]:
            try:
                stat = os.stat(path)
                files.append((path, stat.st_mtime_ns, stat.st_size))
            except OSError:
                files.append((path, None, None))
    rows = tuple(ContractDocument.objects.order_by("name").values_list("name", "updated_at"))
    return (tuple(files), rows)


def declared_applications() -> tuple[Application, ...]:
    """The configured and uploaded documents, re-read when they change (looked at every few
    seconds); a file broken while running keeps what was read before (none, if it was broken
    from the start, which the system check reports), and logs why once per change."""
    global _loaded
    patterns = list(getattr(settings, "ASYNCAPI_FILES", []) or [])
    now = time.monotonic()
    if _loaded is not None and now - _loaded.checked_at < RECHECK_SECONDS:
        return _loaded.applications
    stamp = (tuple(patterns), _stamp(patterns))
    if _loaded is not None and _loaded.stamp == stamp:
        _loaded = replace(_loaded, checked_at=now)
        return _loaded.applications
    problem = ""
    try:
        applications = tuple(_one_per_service([*read_document_files(patterns), *uploaded_applications()]))
    except ImproperlyConfigured as error:
        # Correlation reads the documents for every batch: a broken one must not stop it.
        problem = str(error)
        log.error("%s Keeping the AsyncAPI documents read before.", error)
        applications = _loaded.applications if _loaded is not None else ()
    _loaded = _Loaded(stamp, applications, now, problem)
    return applications


def documents_problem() -> str:
    """Why the declared documents could not be read as they are now ('' when they could)."""
    declared_applications()
    return _loaded.problem if _loaded is not None else ""


def forget_loaded_documents() -> None:
    """Read the documents afresh on next use (after an upload in this process, and in tests)."""
    global _loaded
    _loaded = None


# --- Reading what ran ---------------------------------------------------------------------------


def application_of(services: Iterable[str]) -> Callable[[str], str]:
    """The declared application an observed service name stands for: itself, or the application
    that a URI-like CloudEvents ``source`` ends with (``/checkout``, ``urn:shop:checkout``), as a
    service's events carry it until the span that emitted them arrives."""
    by_name = {service.lower(): service for service in services}

    def name(observed: str) -> str:
        if observed in by_name.values():
            return observed
        last = re.split(r"[/:]", observed.rstrip("/"))[-1].lower()
        return by_name.get(last, observed)

    return name


def _added(tally: Tally | None, more: Tally) -> Tally:
    return more if tally is None else replace(tally, count=tally.count + more.count)


def observed_traffic(applications: Sequence[Application], window_seconds: int, now: datetime | None = None) -> ObservedTraffic:
    from tracing.models import Observation

    events, reactions = window_observations(window_seconds, now)
    app = application_of(a.service for a in applications)
    produced: dict[tuple[str, str], int] = defaultdict(int)
    for event in events:
        produced[(event.service, event.type)] += 1
    reacted: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for reaction in earliest_reactions(reactions):
        if app(reaction.consumer) != app(reaction.producer):
            reacted[(app(reaction.producer), reaction.type, app(reaction.consumer))].append(reaction.event_id)
        produced.setdefault((reaction.producer, reaction.type), 0)
    flows = dict(Observation.objects.filter(id__in=[ids[0] for ids in reacted.values()]).values_list("id", "flow_id"))
    since = (now or timezone.now()) - timedelta(seconds=window_seconds)
    schemas = payload_schemas(applications)
    tallies: dict[tuple[str, str], Tally] = {}
    violations: dict[tuple[str, str, str], Tally] = {}
    for (producer, message), count in produced.items():
        sample = list(
            Observation.objects.filter(kind=Observation.Kind.EVENT, service=producer, name=message, received_at__gte=since)
            .order_by("-id")
            .values_list("detail", "flow_id")[: PAYLOAD_SAMPLE if schemas.get(message) else 1]
        )
        key = (app(producer), message)
        tallies[key] = _added(tallies.get(key), Tally(count, sample[0][1] if sample else None))
        data = [((detail or {}).get("data"), flow_id) for detail, flow_id in sample]
        for declarer, tally in invalid_payloads(schemas.get(message, []), data).items():
            violations[(*key, declarer)] = _added(violations.get((*key, declarer)), tally)
    return ObservedTraffic(
        tallies,
        {key: Tally(len(ids), flows.get(ids[0])) for key, ids in reacted.items()},
        violations,
    )


def contract_report(window_seconds: int, now: datetime | None = None) -> list[DriftRow]:
    """The drift of the declared documents over the last ``window_seconds``."""
    applications = declared_applications()
    if not applications:
        return []
    return contract_drift(declared_map(applications), observed_traffic(applications, window_seconds, now))
