"""Cutover day in a real browser: ticks through htmx, per-user steps found through the
drill-down, and a DNS step that ticks itself while the page is open (the checklist polls during
cutover, keeping the drill-down's filter)."""

import pytest
from playwright.sync_api import expect

from dnscheck.services import check_project
from projects.cutover import auto_tick
from tests.dnscheck.zones import serve_target_records
from tests.servers.chromium import log_in

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


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
    # A page of others sorted before her: she is found through the drill-down's search.
    for n in range(60):
        project.mailboxes.create(
            source_address=f"aaron{n:02}@contoso.test",
            target_address=f"aaron{n:02}@contoso.onmicrosoft.com",
        )
    page = browser_context.new_page()
    log_in(page, live_server.url, "carol", "pw-carol-1")
    page.goto(f"{live_server.url}/projects/{project.pk}/cutover/")
    page.evaluate("window.sameDocument = true")

    freeze = page.locator("li.cutover-step", has_text="Announce the freeze")
    freeze.get_by_placeholder("Note (optional)").fill("mail sent at 9:00")
    freeze.get_by_role("button", name="Tick").click()
    expect(page.locator("li.cutover-step.done", has_text="mail sent at 9:00")).to_be_visible()

    profile = project.cutover_steps.get(key="outlook-profile")
    count = page.locator(f"#per-user-count-{profile.pk}")
    expect(count).to_contain_text("0 of 61 done")
    row = page.locator("table.per-user tr", has_text="Ann Archer")
    expect(row).to_have_count(0)  # not on the first page
    page.get_by_label("Address or name").fill("Ann Archer")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("table.per-user tbody tr")).to_have_count(1)
    row.get_by_role("button", name="tick").last.click()
    expect(row.locator(".ok", has_text="carol")).to_be_visible()
    expect(count).to_contain_text("1 of 61 done")
    assert profile.mailbox_steps.get().mailbox.display_name == "Ann Archer"
    assert page.evaluate("window.sameDocument") is True  # htmx swaps, no page loads

    # Cutover: DNS now serves the target's records; the beat's re-check ticks the step and
    # the open page shows it on its next poll.
    serve_target_records(old_dns)
    check_project(project)
    auto_tick(project)
    done = page.locator("li.cutover-step.done", has_text="Set MX, autodiscover")
    # The page polls every 10 s: waits for the swap, with room for a slow request or two.
    expect(done).to_be_visible(timeout=35_000)
    expect(page.locator("table.per-user tbody tr")).to_have_count(1)  # the poll kept the filter
    expect(row.locator(".ok", has_text="carol")).to_be_visible()
    screenshot(page, "checklist")

    page.goto(f"{live_server.url}/projects/{project.pk}/dns/")
    expect(page.locator("td.verdict-ok").first).to_be_visible()
    assert page.locator("td.verdict-old, td.verdict-missing, td.verdict-nxdomain").count() == 0
    screenshot(page, "propagation")
