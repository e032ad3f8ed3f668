"""The JSON API fuzzed by Schemathesis from its own OpenAPI document (``/api/schema``): valid and
invalid parameters of every operation, with a read token; never a 5xx, and every answer matches
the document."""

from __future__ import annotations

import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from dashboard.api.schema import api_document
from tests.fuzz import fuzz_settings
from tokens.models import ApiToken

pytestmark = pytest.mark.django_db(transaction=True)
schema = schemathesis.openapi.from_dict(api_document())


@pytest.fixture
def read_token() -> str:
    return ApiToken.issue("fuzz", ApiToken.Scope.READ)[1]


@schema.parametrize()
@fuzz_settings(20)
def test_every_api_operation_answers_within_its_document(case, read_token, live_server):
    response = case.call(base_url=live_server.url, headers={"Authorization": f"Bearer {read_token}"})
    case.validate_response(response, checks=[not_a_server_error, status_code_conformance, response_schema_conformance])
