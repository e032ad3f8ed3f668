"""System checks: ``manage.py check``, ``migrate`` and ``serve`` stop on a broken flow
definitions file or AsyncAPI document, with the file, line or path and key at fault, instead of
starting without it."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error
from django.core.exceptions import ImproperlyConfigured

from tracing.contracts import read_document_files
from tracing.flowconfig import read_flows_file


def flow_definitions_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    path = getattr(settings, "FLOWS_FILE", None)
    if not path:
        return []
    try:
        read_flows_file(str(path))  # read afresh: the loader would keep an earlier good file
    except ImproperlyConfigured as error:
        return [Error(str(error), hint="Fix the file, or unset CHOREOSCOPE_FLOWS.", id="tracing.E001")]
    return []


def asyncapi_documents_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    patterns = getattr(settings, "ASYNCAPI_FILES", None)
    if not patterns:
        return []
    try:
        read_document_files(patterns)
    except ImproperlyConfigured as error:
        return [Error(str(error), hint="Fix the document, or leave it out of CHOREOSCOPE_ASYNCAPI.", id="tracing.E002")]
    return []
