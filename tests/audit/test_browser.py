"""In a real browser: a consultant's actions, then the audit page lists exactly those, in order."""

import pytest
from playwright.sync_api import expect

from mailboxes.models import Mailbox
from projects.cutover import ensure_checklist
from projects.models import Project, Tenant
from tests.servers.chromium import log_in

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def contoso(alice):
    # IMAP on both sides, so each mailbox has its own login on each.
    project = Project.objects.create(
        client_name="Contoso",
        source=Tenant.objects.create(kind="imap", endpoint="imap.old.example", username="admin"),
        target=Tenant.objects.create(kind="imap", endpoint="imap.new.example", username="admin"),
    )
    project.members.set([alice])
    ensure_checklist(project)
    for name in ("ann", "ben"):
        Mailbox.objects.create(
            project=project,
            source_address=f"{name}@contoso.example",
            target_address=f"{name}@contoso.onmicrosoft.example",
            source_login=f"{name}-src",
            source_password=f"src-secret-{name}",
            target_login=f"{name}-dst",
            target_password=f"dst-secret-{name}",
        )
    return project


def test_the_log_shows_every_action_in_order(live_server, browser_context, contoso):
    page = browser_context.new_page()
    log_in(page, live_server.url)
    project_url = f"{live_server.url}{contoso.get_absolute_url()}"

    page.goto(project_url)
    page.get_by_role("link", name="Edit project").click()
    page.fill("#id_source-secret", "Tenant-Secret-2027")
    page.get_by_role("button", name="Save project").click()
    expect(page.get_by_text("Project Contoso saved.")).to_be_visible()

    page.get_by_role("link", name="Add mailbox").click()
    page.fill("#id_source_address", "cleo@contoso.example")
    page.fill("#id_target_address", "cleo@contoso.onmicrosoft.example")
    page.fill("#id_source_login", "cleo-src")
    page.fill("#id_source_password", "src-secret-cleo")
    page.fill("#id_target_login", "cleo-dst")
    page.fill("#id_target_password", "dst-secret-cleo")
    page.get_by_role("button", name="Add mailbox").click()
    expect(page.get_by_text("Mailbox cleo@contoso.example added.")).to_be_visible()

    page.goto(project_url)
    page.select_option("#bulk-action", "delta")
    page.check("input[name=scope][value=filtered]")
    page.get_by_role("button", name="Apply to mailboxes").click()
    expect(page.get_by_text("Delta pass started for 3 mailboxes.")).to_be_visible()

    page.get_by_role("link", name="Cutover checklist").click()
    first = contoso.cutover_steps.order_by("position").first()
    page.locator("form.tick").first.get_by_role("button", name="Tick").click()
    expect(page.locator("form.tick").first.get_by_role("button", name="Un-tick")).to_be_visible()

    page.goto(project_url)
    page.get_by_role("link", name="ann@contoso.example", exact=True).click()
    page.get_by_role("button", name="Make link").click()
    expect(page.locator("#enduser-link")).to_be_visible()

    page.goto(project_url)
    with page.expect_download() as download:
        page.get_by_role("link", name="Final report (CSV)").click()
    assert download.value.suggested_filename == "contoso-report.csv"

    page.get_by_role("link", name="Audit log").click()
    rows = page.locator("#entries tbody tr")
    expect(rows).to_have_count(6)
    expected = [
        ("Export downloaded", "Downloaded the final report"),
        (
            "End-user link made",
            "Made an end-user link for ann@contoso.example, valid until revoked",
        ),
        ("Checklist ticked", f"Ticked “{first.title}”"),
        ("Pass started", "Delta pass started for 3 mailboxes."),
        (
            "Mailbox added",
            "Added the mailbox cleo@contoso.example (to cleo@contoso.onmicrosoft.example)",
        ),
        (
            "Tenant changed",
            "Changed the source tenant: Password (of the master user, or shared by the mailboxes)",
        ),
    ]
    for index, (action, detail) in enumerate(expected):
        cells = rows.nth(index).locator("td")
        expect(cells.nth(1)).to_have_text("alice")
        expect(cells.nth(2)).to_have_text("127.0.0.1")
        expect(cells.nth(3)).to_have_text(action)
        expect(cells.nth(4)).to_have_text(detail)
    assert "Tenant-Secret-2027" not in page.content()
