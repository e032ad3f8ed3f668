"""The live pages in Chromium against a real server: events posted to /v1/events show up
without a reload."""

import time
import uuid

import pytest
from playwright.sync_api import expect

from tests.conftest import TEST_SCREENSHOTS
from tests.http import flow_id_of, post_event, session_cookie

pytestmark = pytest.mark.browser
SCREENSHOTS = TEST_SCREENSHOTS


def wait_live(page, selector: str = "#live-status") -> None:
    page.wait_for_selector(f'{selector}[data-state="live"]', timeout=10_000)


def test_the_live_stream_shows_events_posted_to_v1_events_within_two_seconds(page, server):
    page.goto("/live/")
    wait_live(page)
    key = f"order-{uuid.uuid4().hex[:8]}"
    answered = post_event(server.url, "OrderCreated", "checkout", key)
    page.wait_for_selector(f'#live-rows tr:has(a:text-is("{key}"))', timeout=2_000)
    assert time.monotonic() - answered < 2.0
    row = page.locator(f'#live-rows tr:has(a:text-is("{key}"))')
    assert row.locator(".cell-service").inner_text() == "checkout"
    assert row.locator(".type-name").inner_text() == "OrderCreated"
    assert row.locator("a").get_attribute("href").startswith("/flows/")


def test_the_live_stream_filters_on_the_server_and_pauses(page, server):
    page.goto("/live/")
    wait_live(page)
    page.fill("#lf-service", "warehouse")
    page.click("#live-filters button[type=submit]")
    page.wait_for_url("**/live/?service=warehouse")
    key = f"order-{uuid.uuid4().hex[:8]}"
    post_event(server.url, "OrderCreated", "checkout", key)
    post_event(server.url, "ShipmentPrepared", "warehouse", key)
    page.wait_for_selector(f'#live-rows tr:has(a:text-is("{key}"))', timeout=3_000)
    services = page.locator("#live-rows .cell-service").all_inner_texts()
    assert services and set(services) == {"warehouse"}

    page.click("#live-pause")
    later = f"order-{uuid.uuid4().hex[:8]}"
    post_event(server.url, "ShipmentPrepared", "warehouse", later)
    page.wait_for_selector("#live-pause:text('Resume (1 new)')", timeout=3_000)
    # Its row is listed at once when stored (no flow link yet), and links to its flow once
    # correlated: either may be what the paused page holds.
    later_row = page.locator(f'#live-rows tr:has-text("{later}")')
    assert later_row.count() == 0
    page.click("#live-pause")
    expect(later_row).to_have_count(1)
    expect(later_row.locator(f'a:text-is("{later}")')).to_have_count(1)


def test_a_flow_page_shows_a_new_reaction_without_a_reload(page, server):
    key = f"order-{uuid.uuid4().hex[:8]}"
    created = f"created-{key}"
    post_event(server.url, "OrderCreated", "checkout", key, event_id=created)
    flow_id = flow_id_of(server.url, session_cookie(server.url), key)
    page.goto(f"/flows/{flow_id}/")
    page.wait_for_selector('#flow-graph[data-node-count="1"]')
    wait_live(page, ".flow-actions .live-status")
    page.evaluate("window.stillTheSamePage = true")

    post_event(server.url, "EmailSent", "email", key, causation=created)
    page.wait_for_selector('#flow-graph[data-node-count="2"]', timeout=3_000)
    assert page.evaluate("window.stillTheSamePage") is True
    assert page.locator("#flow-count").inner_text() == "2 observations"
    assert page.locator("#flow-graph").get_attribute("data-fresh")


def test_the_service_map_grows_a_new_consumer_without_a_reload(page, server):
    key = f"order-{uuid.uuid4().hex[:8]}"
    for consumer, reaction in (("email", "EmailSent"), ("warehouse", "ShipmentPrepared"), ("rewards", "PointsCreated")):
        post_event(server.url, "OrderCreated", "checkout", f"{key}-{consumer}", event_id=f"c-{key}-{consumer}")
        post_event(server.url, reaction, consumer, f"{key}-{consumer}", causation=f"c-{key}-{consumer}")
    page.goto("/services/")
    page.wait_for_selector('.service-map[data-ready="true"]')
    wait_live(page, ".map-panel .live-status")
    page.evaluate("window.stillTheSamePage = true")
    newcomer = f"fraud-{uuid.uuid4().hex[:4]}"
    post_event(server.url, "OrderCreated", "checkout", f"{key}-fraud", event_id=f"c-{key}-fraud")
    post_event(server.url, "FraudChecked", newcomer, f"{key}-fraud", causation=f"c-{key}-fraud")
    page.wait_for_selector(f'.service-map[data-nodes~="service:{newcomer}"]', timeout=5_000)
    assert page.evaluate("window.stillTheSamePage") is True
    expect(page.locator("[data-map-table]")).to_contain_text(newcomer)


def test_the_live_pages_show_what_was_just_sent_at_desktop_and_phone_widths(page, server, browser):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    keys = []
    for n in range(6):
        key = f"order-{1040 + n}-{uuid.uuid4().hex[:4]}"
        keys.append(key)
        post_event(server.url, "OrderCreated", "checkout", key, event_id=f"c-{key}")
        post_event(server.url, "EmailSent", "email", key, causation=f"c-{key}")
        post_event(server.url, "ShipmentPrepared", "warehouse", key, causation=f"c-{key}")
    page.goto("/live/")
    wait_live(page)
    page.wait_for_selector("#live-rows tr")
    expect(page.locator("#live-rows")).to_contain_text(keys[-1])
    page.screenshot(path=str(SCREENSHOTS / "live.png"))
    page.goto("/services/")
    page.wait_for_selector('.service-map[data-ready="true"]')
    wait_live(page, ".map-panel .live-status")
    page.wait_for_timeout(300)
    # OrderCreated, emitted by checkout, consumed by email and by warehouse.
    for text in ("OrderCreated", "checkout", "email", "warehouse"):
        expect(page.locator("[data-map-table]")).to_contain_text(text)
    page.screenshot(path=str(SCREENSHOTS / "services.png"))
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/live/")
    page.wait_for_selector("#live-rows tr")
    page.screenshot(path=str(SCREENSHOTS / "live-phone.png"))
    page.goto("/services/")
    page.wait_for_selector('.service-map[data-ready="true"]')
    page.wait_for_timeout(300)
    page.screenshot(path=str(SCREENSHOTS / "services-phone.png"))


@pytest.fixture(scope="module")
def server_without_workers(tmp_path_factory):
    """PostgreSQL and Redis, and no Celery worker: stored observations wait for correlation, as
    behind busy workers."""
    import os

    from tests.conftest import _create_postgres_database, _drop_postgres_database, start_server, stop_server

    base_url = os.environ["DATABASE_URL"]
    database_url, name = _create_postgres_database(base_url)
    running = start_server(tmp_path_factory.mktemp("no-workers"), {"DATABASE_URL": database_url}, worker=False)
    yield running
    stop_server(running)
    _drop_postgres_database(base_url, name)


@pytest.fixture
def stream_without_workers(browser, server_without_workers):
    """The live stream page, logged in, on the server without workers."""
    from tests.conftest import log_in

    context = browser.new_context(base_url=server_without_workers.url, viewport={"width": 1360, "height": 860})
    page = context.new_page()
    log_in(page, server_without_workers.url)
    page.goto("/live/")
    wait_live(page)
    yield page
    context.close()


def correlate_now(server) -> None:
    """What a worker would do once it catches up: the same code, run once."""
    server.manage("shell", "-c", "from tracing.services import correlate_pending_observations as c; c()")


@pytest.mark.redis
@pytest.mark.postgres
def test_the_live_stream_shows_an_event_before_correlation_and_links_it_to_its_flow_after(
    stream_without_workers, server_without_workers
):
    page, server = stream_without_workers, server_without_workers
    key = f"order-{uuid.uuid4().hex[:8]}"
    answered = post_event(server.url, "OrderCreated", "checkout", key)
    row = page.locator(f'#live-rows tr:has(.cell-flow :text-is("{key}"))')
    row.wait_for(timeout=2_000)
    assert time.monotonic() - answered < 2.0
    assert row.locator(".cell-flow a").count() == 0, "no flow yet: nothing has correlated it"
    assert row.locator(".cell-flow span").get_attribute("title") == "correlating…"
    assert row.locator(".badge").inner_text().lower() == "correlating"
    page.screenshot(path=str(SCREENSHOTS / "live-before-correlation.png"))

    correlate_now(server)  # the row links to its flow in place
    link = row.locator(f'.cell-flow a:text-is("{key}")')
    link.wait_for(timeout=5_000)
    assert link.get_attribute("href") == f"/flows/{flow_id_of(server.url, session_cookie(server.url), key)}/"
    assert row.locator(".badge").inner_text().lower() == "running"
    assert page.locator(f'#live-rows tr:has(.cell-flow :text-is("{key}"))').count() == 1


@pytest.mark.redis
@pytest.mark.postgres
def test_cleared_rows_do_not_come_back_when_they_are_correlated(stream_without_workers, server_without_workers):
    page, server = stream_without_workers, server_without_workers
    cleared = f"order-{uuid.uuid4().hex[:8]}"
    post_event(server.url, "OrderCreated", "checkout", cleared)
    page.locator(f'#live-rows tr:has(.cell-flow :text-is("{cleared}"))').wait_for(timeout=2_000)
    page.click("#live-clear")
    assert page.locator("#live-rows tr").count() == 0
    correlate_now(server)
    later = f"order-{uuid.uuid4().hex[:8]}"
    post_event(server.url, "OrderCreated", "checkout", later)
    page.locator(f'#live-rows tr:has(.cell-flow :text-is("{later}"))').wait_for(timeout=2_000)
    page.wait_for_timeout(500)  # the correlated message went out before the later event's
    assert page.locator(f'#live-rows tr:has(.cell-flow :text-is("{cleared}"))').count() == 0


@pytest.fixture(scope="module")
def server_listing_few_rows(tmp_path_factory):
    """A real server whose stream pages list at most 5 new rows a second."""
    import os

    from tests.conftest import _create_postgres_database, _drop_postgres_database, start_server, stop_server

    extra = {"CHOREOSCOPE_LIVE_STREAM_ROWS_PER_SECOND": "5"}
    base_url, database = os.environ.get("DATABASE_URL"), None
    if base_url:
        extra["DATABASE_URL"], database = _create_postgres_database(base_url)
    running = start_server(tmp_path_factory.mktemp("sampling"), extra)
    yield running
    stop_server(running)
    if base_url and database:
        _drop_postgres_database(base_url, database)


def test_above_what_a_page_lists_the_stream_says_it_shows_a_sample(browser, server_listing_few_rows):
    from tests.conftest import log_in
    from tests.http import post_cloudevents

    server = server_listing_few_rows
    context = browser.new_context(base_url=server.url, viewport={"width": 1360, "height": 860})
    page = context.new_page()
    log_in(page, server.url)
    page.goto("/live/")
    wait_live(page)
    expect(page.locator("#live-sampling")).to_be_hidden()
    keys = [f"order-{uuid.uuid4().hex[:8]}" for _ in range(50)]
    batch = [
        {"specversion": "1.0", "id": key, "source": "checkout", "type": "OrderCreated", "correlationid": key, "data": {}}
        for key in keys
    ]
    post_cloudevents(server.url, batch)
    sampling = page.locator("#live-sampling")
    expect(sampling).to_be_visible(timeout=3_000)
    # Five listed (the newest), forty-five left out, each counted once across both stages.
    expect(sampling.locator("[data-left-out]")).to_have_text("45")
    expect(page.locator("#live-rows tr")).to_have_count(5)
    for key in keys[-5:]:
        expect(page.locator("#live-rows")).to_contain_text(key)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "live-sampling.png"))
    # A filter narrow enough for the page lists every matching row, and the notice goes.
    page.fill("#lf-key", keys[0])
    page.click("#live-filters button[type=submit]")
    expect(page.locator("#live-rows tr")).to_have_count(1)
    expect(sampling).to_be_hidden()
    context.close()
