"""Cutover day in a real browser: ticks through htmx, per-user steps, and a DNS step that ticks
itself while the page is open (the checklist polls during cutover)."""

import pytest
from playwright.sync_api import expect

from dnscheck.services import check_project
from projects.cutover import auto_tick
from tests.dnscheck.zones import serve_target_records

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_cutover_day(live_server, browser_context, screenshot, django_user_model, domain, old_dns):
    user = django_user_model.objects.create_user("carol", password="pw-carol-1")
    project = domain.project
    project.members.add(user)
    project.state = "cutover"
    project.save()
    project.mailboxes.create(
        source_address="ann@contoso.test",
        target_address="ann@contoso.onmicrosoft.com",
        display_name="Ann Archer",
    )
    page = browser_context.new_page()
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "carol")
    page.fill("#id_password", "pw-carol-1")
    page.click("button[type=submit]")
    page.goto(f"{live_server.url}/projects/{project.pk}/cutover/")
    page.evaluate("window.sameDocument = true")

    freeze = page.locator("li.cutover-step", has_text="Announce the freeze")
    freeze.get_by_placeholder("Note (optional)").fill("mail sent at 9:00")
    freeze.get_by_role("button", name="Tick").click()
    expect(page.locator("li.cutover-step.done", has_text="mail sent at 9:00")).to_be_visible()

    row = page.locator("table.per-user tr", has_text="Ann Archer")
    row.get_by_role("button", name="tick").first.click()
    expect(row.locator(".ok", has_text="carol")).to_be_visible()
    assert page.evaluate("window.sameDocument") is True  # htmx swaps, no page loads

    # Cutover: DNS now serves the target's records; the beat's re-check ticks the step and
    # the open page shows it on its next poll.
    serve_target_records(old_dns)
    check_project(project)
    auto_tick(project)
    done = page.locator("li.cutover-step.done", has_text="Set MX, autodiscover")
    expect(done).to_be_visible(timeout=15_000)
    screenshot(page, "checklist")

    page.goto(f"{live_server.url}/projects/{project.pk}/dns/")
    expect(page.locator("td.verdict-ok").first).to_be_visible()
    assert page.locator("td.verdict-old, td.verdict-missing, td.verdict-nxdomain").count() == 0
    screenshot(page, "propagation")
