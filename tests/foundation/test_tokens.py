import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import RequestFactory

from tokens.auth import check_bearer
from tokens.models import ApiToken, authenticate_token

pytestmark = pytest.mark.django_db


def test_token_create_prints_the_token_alone_on_its_last_line_and_stores_only_its_digest():
    out = StringIO()
    call_command("token", "create", "checkout", "--scope", "ingest", stdout=out, stderr=StringIO())
    raw = out.getvalue().strip().splitlines()[-1]
    assert raw.startswith("chs_") and len(raw) > 40
    token = ApiToken.objects.get(name="checkout")
    assert token.scope == "ingest"
    assert raw not in {token.digest, token.hint}
    dump = StringIO()
    call_command("dumpdata", "tokens", stdout=dump)
    assert raw not in dump.getvalue()
    assert json.loads(dump.getvalue())[0]["fields"]["digest"] == token.digest


def test_a_token_authenticates_only_for_its_scope_and_only_until_revoked():
    token, raw = ApiToken.issue("reader", "read")
    assert authenticate_token(raw, "read") == token
    assert authenticate_token(raw, "ingest") is None
    assert authenticate_token(raw + "x", "read") is None
    token.revoke()
    assert authenticate_token(raw, "read") is None


def test_bearer_check_explains_what_is_wrong():
    _, raw = ApiToken.issue("svc", "ingest")
    factory = RequestFactory()
    assert check_bearer(factory.get("/"), "ingest", required=False).error is None
    assert "Missing token" in str(check_bearer(factory.get("/"), "ingest", required=True).error)
    assert "Malformed" in str(check_bearer(factory.get("/", HTTP_AUTHORIZATION="Token abc"), "ingest", required=True).error)
    assert "Invalid token" in str(check_bearer(factory.get("/", HTTP_AUTHORIZATION="Bearer nope"), "ingest", required=True).error)
    ok = check_bearer(factory.get("/", HTTP_AUTHORIZATION=f"Bearer {raw}"), "ingest", required=True)
    assert ok.error is None and ok.token is not None


def test_token_list_and_revoke_commands():
    token, raw = ApiToken.issue("old", "read")
    out = StringIO()
    call_command("token", "list", stdout=out)
    assert "old\tread" in out.getvalue() and raw not in out.getvalue()
    call_command("token", "revoke", str(token.pk), stdout=StringIO())
    token.refresh_from_db()
    assert token.revoked_at is not None
