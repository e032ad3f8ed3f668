"""``field__any``: the same rows as ``__in``, for plain, related and text fields, on both databases."""

from __future__ import annotations

import hashlib
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.tracing.factories import checkout_flow
from tracing.models import Anchor, Observation

pytestmark = pytest.mark.django_db


@pytest.fixture
def observations():
    checkout_flow()
    checkout_flow()
    return list(Observation.objects.order_by("id"))


def test_any_selects_what_in_selects_on_a_primary_key_a_foreign_key_a_text_and_a_uuid_column(observations):
    some_ids = [obs.id for obs in observations[::3]]
    flow_ids = sorted({obs.flow_id for obs in observations})[:1]
    digests = sorted(Anchor.objects.values_list("digest", flat=True))[::2]
    names = sorted({obs.name for obs in observations})[::2]

    assert set(Observation.objects.filter(id__any=some_ids)) == set(Observation.objects.filter(id__in=some_ids))
    assert 0 < Observation.objects.filter(flow_id__any=flow_ids).count() < len(observations)
    assert set(Observation.objects.filter(flow__any=flow_ids)) == set(Observation.objects.filter(flow_id__in=flow_ids))
    assert 0 < Observation.objects.filter(name__any=names).count() < len(observations)
    assert set(Observation.objects.filter(name__any=names)) == set(Observation.objects.filter(name__in=names))
    assert 0 < len(digests) == Anchor.objects.filter(digest__any=digests).count() < Anchor.objects.count()
    assert set(Anchor.objects.filter(digest__any=digests)) == set(Anchor.objects.filter(digest__in=digests))


def test_an_empty_list_selects_nothing(observations):
    assert not Observation.objects.filter(id__any=[]).exists()
    assert Observation.objects.exclude(id__any=[]).count() == len(observations)


def test_on_postgresql_the_list_is_one_array_parameter_whatever_its_length(observations):
    ids = [obs.id for obs in observations]
    with CaptureQueriesContext(connection) as context:
        assert Observation.objects.filter(id__any=ids).count() == len(ids)
    sql = context.captured_queries[0]["sql"]
    if connection.vendor == "postgresql":
        assert "= ANY(" in sql and " IN (" not in sql
    else:
        assert " IN (" in sql


def test_an_anchor_digest_is_what_migration_0009_computes_for_names_stored_before_it():
    from tracing.models import anchor_digest

    name = "span:4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7"
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT md5(%s)::uuid", [name])
            expected = cursor.fetchone()[0]
    else:  # the SQLite branch stores hexdigest(), which a UUIDField reads as this UUID
        expected = uuid.UUID(hashlib.md5(name.encode(), usedforsecurity=False).hexdigest())
    assert anchor_digest(name) == expected
