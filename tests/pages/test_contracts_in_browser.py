"""The contracts page and the map's declared layer in Chromium: a document uploaded in the admin
shows up as declared, its receiver, to whom nobody sends, as the party at fault, and its edge
dashed on the service map."""

from __future__ import annotations

import pytest

from tests.conftest import TEST_SCREENSHOTS

pytestmark = pytest.mark.browser

# A service of its own, so that no other test's flows or expectations change while it is declared.
LEDGER = """\
asyncapi: 3.0.0
info: {title: ledger-browser-test, version: 1.0.0}
channels:
  invoices:
    address: billing.invoices
    messages:
      InvoiceIssued: {payload: {type: object, required: [invoice_id]}}
operations:
  book: {action: receive, channel: {$ref: '#/channels/invoices'}}
"""


def test_an_uploaded_document_shows_its_silent_receiver_at_fault(page, server, tmp_path):
    document = tmp_path / "ledger.yaml"
    document.write_text(LEDGER)
    page.goto("/admin/tracing/contractdocument/add/")
    page.fill("#id_name", "ledger-browser-test.yaml")
    page.set_input_files("#id_upload", str(document))
    page.click("input[name=_save]")
    try:
        page.wait_for_selector(".messagelist .success")
        page.goto("/services/")
        page.check("[data-contracts-overlay]")
        silent = "silent type:InvoiceIssued->service:ledger-browser-test"
        page.wait_for_selector(f".service-map[data-overlay*='{silent}']")
        assert page.locator(".contracts-legend").is_visible()
        page.uncheck("[data-contracts-overlay]")
        page.wait_for_selector(".service-map:not([data-overlay])")
        page.click("nav.tabs a:has-text('Contracts')")
        page.wait_for_url("**/services/contracts/")
        row = page.locator("table.drift tr[data-kind=declared_not_observed]", has_text="InvoiceIssued")
        assert row.count() == 1
        assert "ledger-browser-test" in row.locator(".party").inner_text()
        assert "declares receiving what nobody sends" in row.inner_text()
        assert page.locator(".documents li", has_text="ledger-browser-test").count() == 1
        page.click("nav[aria-label='Kind of drift'] a:has-text('Schema violations')")
        assert page.locator("table.drift tr[data-kind=declared_not_observed]").count() == 0
        TEST_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(TEST_SCREENSHOTS / "contracts.png"), full_page=True)
    finally:
        code = "from tracing.models import ContractDocument as D; D.objects.filter(name__startswith='ledger-browser').delete()"
        server.manage("shell", "-c", code)


def test_a_broken_upload_is_refused_with_the_path_at_fault(page, tmp_path):
    document = tmp_path / "broken.yaml"
    document.write_text("asyncapi: 3.0.0\ninfo: {title: broken}\n")
    page.goto("/admin/tracing/contractdocument/add/")
    page.fill("#id_name", "broken-browser-test.yaml")
    page.set_input_files("#id_upload", str(document))
    page.click("input[name=_save]")
    assert "broken-browser-test.yaml, /info: 'version' is a required property" in page.locator(".errorlist.nonfield").inner_text()
