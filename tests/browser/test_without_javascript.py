"""Everything but the live refresh works with JavaScript off, and the pages fit a phone."""

import pytest
from playwright.sync_api import expect

from mailboxes.models import Mailbox
from tests.conftest import make_project
from tests.servers.chromium import log_in

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def no_js_page(chromium):
    context = chromium.new_context(
        java_script_enabled=False, viewport={"width": 375, "height": 800}
    )
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


@pytest.fixture
def contoso(alice):
    project = make_project(members=[alice])
    for name, state in (("ann", "running"), ("ben", "failed"), ("cid", "new")):
        project.mailboxes.create(
            source_address=f"{name}@contoso.example",
            target_address=f"{name}@fabrikam.example",
            state=state,
            items_total=10,
            items_copied=4,
            error="Login refused" if state == "failed" else "",
        )
    return project


def fits_the_screen(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_filter_and_act_without_javascript(live_server, contoso, no_js_page, screenshot):
    page = no_js_page
    log_in(page, live_server.url)
    expect(page.get_by_role("link", name="Contoso")).to_be_visible()
    assert fits_the_screen(page)
    screenshot(page, "dashboard-phone")

    page.get_by_role("link", name="Contoso").click()
    page.select_option("#id_show", "failed")
    page.get_by_role("button", name="Apply", exact=True).click()
    expect(page.get_by_role("link", name="ben@contoso.example")).to_be_visible()
    expect(page.get_by_role("link", name="ann@contoso.example")).to_have_count(0)
    assert fits_the_screen(page)
    screenshot(page, "project-phone")

    page.check("input[aria-label='Select ben@contoso.example']")
    page.select_option("#bulk-action", "pause")
    page.get_by_role("button", name="Apply to mailboxes").click()
    expect(page.get_by_text("Pause requested for 1 mailbox (running ones only).")).to_be_visible()
    assert "show=failed" in page.url  # the filter survives the action

    page.get_by_role("link", name="Reset").click()
    page.get_by_role("link", name="ann@contoso.example").click()
    expect(page.get_by_role("heading", name="ann@contoso.example")).to_be_visible()
    page.fill("#id_link_days", "7")
    page.get_by_role("button", name="Make link").click()
    assert "link_days=7" in page.url and page.input_value("#enduser-link")
    screenshot(page, "mailbox-phone")
    assert fits_the_screen(page)
    assert Mailbox.objects.get(source_address="ann@contoso.example").state == "running"
