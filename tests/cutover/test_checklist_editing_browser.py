"""A consultant shapes an IMAP-to-IMAP project's checklist in a real browser (adds a step of
their own, removes one, moves one up) and ticks through cutover day to the end: the DNS steps
tick themselves when the new host's records are served (real NSD), the rest by hand."""

import pytest
from playwright.sync_api import expect

from tests.dnscheck.zones import DOMAIN, IMAP, IMAP_HOST, zone
from tests.servers.chromium import log_in

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

OWN_STEP = "Call the old provider's support"


@pytest.fixture
def imap_project(project, old_dns, django_user_model):
    carol = django_user_model.objects.create_user("carol", password="pw-carol-1")
    project.members.add(carol)
    project.source.endpoint = "imap.old.test"
    project.source.save()
    project.target.kind, project.target.endpoint = "imap", IMAP_HOST
    project.target.save()
    project.domains.create(name=DOMAIN, nameservers=old_dns.address)
    project.mailboxes.create(
        source_address="ann@contoso.test", target_address="ann@contoso.test", display_name="Ann"
    )
    return project


def step(page, title):
    return page.locator("li.cutover-step", has_text=title)


def shown_titles(page) -> list[str]:
    return [t.removeprefix("✔ ") for t in page.locator(".step-title").all_inner_texts()]


def test_edit_the_checklist_and_tick_through_cutover(
    live_server, browser_context, imap_project, old_dns, tmp_path
):
    project = imap_project
    page = browser_context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # "Remove this step?"
    log_in(page, live_server.url, "carol", "pw-carol-1")
    page.goto(f"{live_server.url}/projects/{project.pk}/cutover/")
    page.evaluate("window.sameDocument = true")
    expect(page.get_by_text("This project migrates to an IMAP host")).to_be_visible()
    expect(page.get_by_text("Outlook")).to_have_count(0)
    expect(step(page, "Re-add the account in the mail program")).to_contain_text(
        "Why it matters: The mail program keeps reading from and sending through the old server"
    )

    # A step of their own, at the end, with why it matters.
    add = page.locator("#add-step")
    add.get_by_label("Title").fill(OWN_STEP)
    add.get_by_label("Why it matters").fill("Only they can release the domain if it sticks.")
    add.get_by_role("button", name="Add", exact=True).click()
    own = step(page, OWN_STEP)
    expect(own).to_contain_text("Why it matters: Only they can release the domain")
    assert shown_titles(page)[-1] == OWN_STEP

    # Moved up twice: before the final delta pass and the close.
    for _ in range(2):
        own.locator("summary", has_text="Edit").click()
        own.get_by_role("button", name="Move up").click()
        expect(own.locator("details[open]")).to_have_count(0)  # a fresh checklist came in
    assert shown_titles(page)[-3:] == [
        OWN_STEP,
        "Final delta pass, once mail stops arriving at the source",
        "Close the project and export the report",
    ]

    # One removed; it is offered back in the template's list.
    freeze = step(page, "Announce the freeze")
    freeze.locator("summary", has_text="Edit").click()
    freeze.get_by_role("button", name="Remove").click()
    expect(step(page, "Announce the freeze")).to_have_count(0)
    expect(page.locator("#add-template-step option", has_text="Announce the freeze")).to_have_count(
        1
    )
    assert page.evaluate("window.sameDocument") is True  # htmx swaps, no page loads
    stored = list(project.cutover_steps.values_list("title", flat=True))
    assert stored == shown_titles(page)
    assert "Announce the freeze and the cutover window to users" not in stored

    # Cutover: the new host's records are served; "Check now" ticks the DNS steps it proves.
    page.get_by_role("button", name="Start the cutover").click()
    old_dns.set_zone(DOMAIN, zone(IMAP))
    old_dns.reload()
    page.goto(f"{live_server.url}/projects/{project.pk}/dns/")
    page.get_by_role("button", name="Check now").click()
    expect(page.get_by_text("3 checklist step(s) ticked themselves")).to_be_visible()
    page.goto(f"{live_server.url}/projects/{project.pk}/cutover/")
    for title in ("Point MX at the new host", "Publish the records mail programs use"):
        expect(step(page, title)).to_have_class("cutover-step card done")
        expect(step(page, title)).to_contain_text("by the check itself")

    # Ann's program is set up again, then every step left is ticked by hand, top to bottom.
    page.get_by_role("row", name="Ann").get_by_role("button", name="tick").click()
    expect(page.get_by_role("row", name="Ann").locator(".ok", has_text="carol")).to_be_visible()
    open_steps = page.locator("li.cutover-step:not(.done)")
    left = open_steps.count()
    assert left > 0
    while left:
        open_steps.first.get_by_role("button", name="Tick", exact=True).click()
        left -= 1
        expect(open_steps).to_have_count(left)
    expect(page.locator("li.cutover-step.done")).to_have_count(len(stored))

    page.get_by_role("button", name="Close the project").click()
    expect(page.locator(".badge.state-closed")).to_have_text("Closed")
    expect(step(page, OWN_STEP)).to_contain_text("Done")
    shot = tmp_path / "checklist-done.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert not project.cutover_steps.filter(done_at__isnull=True).exists()
    project.refresh_from_db()
    assert project.state == "closed"
