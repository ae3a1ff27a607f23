"""A consultant in a real browser: edits the 'planned' message and previews it, sends it to two
of three mailboxes from the project page, reads both in the outbox (kept there by a real worker:
no mail server is set) with each user's own working link, then schedules a delta and sees
"next: ..." on the project page and the dashboard. Screenshots go to test-artifacts/."""

import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from notices.models import Notice
from tests.servers.chromium import log_in
from tests.servers.worker import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_template_preview_bulk_send_outbox_and_schedule(
    live_server,
    settings,
    project,
    users,
    browser_context,
    chromium,
    start_worker,
    screenshot,
    request,
):
    settings.SITE_URL = live_server.url
    settings.EMAIL_HOST = ""  # make run: kept in the outbox
    project.time_zone = "Europe/Berlin"
    project.save()
    worker = start_worker("worker", env={"EMAIL_HOST": ""})
    ann, ben, cat = users
    page = browser_context.new_page()
    log_in(page, live_server.url)
    page.get_by_role("link", name="Contoso").click()

    page.get_by_role("link", name="Notifications").click()
    page.get_by_role("link", name="Your move is planned").click()
    page.fill("input[name=subject]", "{{ name }}: your move to {{ new_address }}")
    page.fill("textarea[name=body]", "Hello **{{ name }}**,\n\nfollow it here: {{ progress_link }}")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Template saved.")).to_be_visible()
    expect(page.locator(".notice-html strong")).to_have_text("Ann Archer")
    expect(page.get_by_text(f"Ann Archer: your move to {ann.target_address}")).to_be_visible()
    screenshot(page, "1-template-preview")

    page.get_by_role("link", name="Notifications of Contoso").click()
    page.get_by_role("link", name="Contoso").first.click()
    page.check(f"#select-{ann.pk}")
    page.check(f"#select-{cat.pk}")
    page.select_option("#bulk-action", "notice_planned")
    page.get_by_role("button", name="Apply to mailboxes").click()
    expect(page.get_by_text("'planned' message queued for 2 mailboxes.")).to_be_visible()
    screenshot(page, "2-bulk-sent")

    wait_until(
        lambda: Notice.objects.filter(state=Notice.State.KEPT).count() == 2,
        timeout=30,
        message=lambda: f"{list(Notice.objects.values('recipient', 'state'))}\n{worker.log()}",
    )
    page.get_by_role("link", name="Notifications").click()
    rows = page.locator("table tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.filter(has_text="Kept in the outbox")).to_have_count(2)
    expect(page.locator("table")).not_to_contain_text(ben.source_address)
    screenshot(page, "3-outbox")

    enduser = chromium.new_context()
    request.addfinalizer(enduser.close)
    for mailbox in (ann, cat):
        page.get_by_role("link", name=f"{mailbox.display_name}: your move").click()
        expect(page.get_by_text(f"To {mailbox.source_address}")).to_be_visible()
        text = page.locator("pre").inner_text()
        link = re.search(rf"{re.escape(live_server.url)}/progress/\S+/", text).group(0)
        expect(page.locator(".notice-html a")).to_have_attribute("href", link)
        own = enduser.new_page()
        own.goto(link)
        expect(own.locator("body")).to_contain_text(mailbox.target_address)
        for other in users:
            if other != mailbox:
                expect(own.locator("body")).not_to_contain_text(other.target_address)
        own.close()
        page.go_back()

    page.get_by_role("link", name="Contoso").first.click()
    page.get_by_role("link", name="Schedules and run windows").click()
    tomorrow = timezone.localtime(timezone.now() + timedelta(days=1), ZoneInfo("Europe/Berlin"))
    page.select_option("#id_kind", "delta")
    page.fill("#id_at", f"{tomorrow:%Y-%m-%d}T22:00")
    page.get_by_role("button", name="Schedule").click()
    expect(page.get_by_text("Scheduled: Delta for all mailboxes.")).to_be_visible()
    expected = "delta for 3 mailboxes, tomorrow 22:00"
    expect(page.locator("#schedules")).to_contain_text(f"Next: {expected}")
    screenshot(page, "4-schedules")
    page.get_by_role("link", name="Contoso").first.click()
    expect(page.locator("#schedules-link")).to_contain_text(f"next: {expected}")
    screenshot(page, "5-project-page")
    page.goto(f"{live_server.url}/")
    expect(page.locator("[data-next-schedule]")).to_have_text(f"next: {expected}")
    screenshot(page, "6-dashboard")
