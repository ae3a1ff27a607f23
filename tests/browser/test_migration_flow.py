"""A consultant's day in a real browser: log in, create a project between two maildirs, import
the users, start a pre-stage and watch it finish live; then the end user's own page."""

import pytest
from django.conf import settings
from playwright.sync_api import expect

from mailboxes.connectors.base import Endpoint, Item
from mailboxes.connectors.maildir import MaildirConnector
from projects.models import CutoverStep
from tests.corpus import corpus_messages
from tests.servers.chromium import log_in
from tests.servers.worker import purge_filesystem_broker

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

USERS = {"ann@contoso.example": ("Ann Archer", 30), "ben@contoso.example": ("Ben Baker", 12)}


def fill_source(root):
    """One maildir per user under ``root``, from the shared corpus byte for byte."""
    messages = corpus_messages()
    for address, (_, count) in USERS.items():
        connector = MaildirConnector(Endpoint(kind="maildir", host=str(root)), address)
        for path, chosen in ((("INBOX",), messages[:count]), (("Archive",), messages[count:][:8])):
            folder = connector.ensure_folder(path, "mail", "inbox" if path == ("INBOX",) else None)
            items = [
                Item(f"m{i}", m.data, flags=m.flags, received=m.internaldate)
                for i, m in enumerate(chosen)
            ]
            connector.store(folder, items)


@pytest.fixture
def maildirs(tmp_path):
    source, target = tmp_path / "source", tmp_path / "target"
    source.mkdir(), target.mkdir()
    fill_source(source)
    return source, target


def create_project(page, source, target):
    page.get_by_role("link", name="New project").first.click()
    page.fill("#id_client_name", "Contoso")
    for side, root in (("source", source), ("target", target)):
        page.select_option(f"#id_{side}-kind", "maildir")
        # htmx redraws the tenant with the maildir fields only: fill in the new ones.
        expect(page.locator(f"#tenant-{side}")).to_contain_text("Maildir folder")
        expect(page.locator(f"#id_{side}-username")).to_have_count(0)
        page.fill(f"#id_{side}-endpoint", str(root))
    page.get_by_role("button", name="Save project").click()
    expect(page.get_by_role("heading", name="Contoso")).to_be_visible()


def import_users(page):
    page.get_by_role("link", name="Import CSV").click()
    lines = ["source_address,target_address,display_name"] + [
        f"{address},{address.split('@')[0]}@fabrikam.example,{name}"
        for address, (name, _) in USERS.items()
    ]
    page.set_input_files(
        "input[type=file]",
        files=[{"name": "users.csv", "mimeType": "text/csv", "buffer": "\n".join(lines).encode()}],
    )
    page.get_by_role("button", name="Import").click()
    for address in USERS:
        expect(page.get_by_role("link", name=address, exact=True)).to_be_visible()


def test_prestage_progress_live_and_the_end_users_page(
    live_server, alice, maildirs, browser_context, chromium, screenshot, start_worker
):
    alice.is_staff = True  # only staff may set up maildir tenants (files on the worker)
    alice.save()
    page = browser_context.new_page()
    log_in(page, live_server.url)
    create_project(page, *maildirs)
    import_users(page)
    screenshot(page, "imported")

    # Queue the pre-stage with no worker running yet, so the page is certainly open and polling
    # before any item moves: the bars can only reach 100 % through the live partial.
    purge_filesystem_broker()
    page.select_option("#bulk-action", "prestage")
    page.check("input[name=scope][value=filtered]")
    page.get_by_role("button", name="Apply to mailboxes").click()
    expect(page.get_by_text("Pre-stage pass started for 2 mailboxes.")).to_be_visible()
    # Queued, nothing listed yet: an indeterminate bar, no percent that would be a guess.
    ann_bar = page.get_by_role("progressbar", name="ann@contoso.example")
    expect(ann_bar).to_be_visible()
    assert ann_bar.get_attribute("value") is None
    page.evaluate("window.notReloaded = true")
    # A ticked row stays ticked through the polls that replace the table.
    page.check("input[name=selected][aria-label='Select ben@contoso.example']")

    # The broker named: a worker start then purges nothing, the queued messages must survive it.
    start_worker("worker-var", broker_url=settings.CELERY_BROKER_URL)
    for address in USERS:
        bar = page.get_by_role("progressbar", name=address)
        expect(bar).to_have_attribute("value", "100", timeout=60_000)
    expect(page.locator("#live")).not_to_have_attribute("hx-trigger", "every 2s")
    assert page.evaluate("window.notReloaded") is True, "the page was reloaded"
    ben_box = page.locator("input[aria-label='Select ben@contoso.example']")
    expect(ben_box).to_be_checked()
    assert page.evaluate("document.activeElement.id") == ben_box.get_attribute("id")
    expect(page.locator("input[aria-label='Select ann@contoso.example']")).not_to_be_checked()
    expect(page.get_by_text("2 done")).to_be_visible()
    screenshot(page, "prestage-done")

    page.get_by_role("link", name="ann@contoso.example", exact=True).click()
    expect(page.get_by_role("cell", name="INBOX")).to_be_visible()
    screenshot(page, "mailbox")
    link = page.input_value("#enduser-link")

    # One of Ann's own steps, ticked on the cutover checklist, shows on her page.
    page.get_by_role("link", name="Contoso").click()
    page.get_by_role("link", name="Cutover checklist").click()
    ann_row = page.get_by_role("row", name="Ann Archer")
    ann_row.get_by_role("button", name="tick").click()
    expect(ann_row.get_by_text("✔ alice")).to_be_visible()
    screenshot(page, "checklist")

    # The end user: a fresh context, no session cookie, one mailbox only.
    enduser = chromium.new_context()
    try:
        their_page = enduser.new_page()
        their_page.goto(link)
        expect(their_page.get_by_role("heading", name="Your mailbox move")).to_be_visible()
        expect(their_page.get_by_text("ann@contoso.example").first).to_be_visible()
        expect(their_page.locator(".enduser-figure")).to_contain_text(
            "38 items of the 38 items in your old mailbox"
        )
        steps = their_page.locator(".user-steps li")
        # Between maildirs the checklist is an IMAP host's: one per-user step, no Outlook.
        expect(steps).to_have_count(1)
        expect(steps.filter(has_text="mail program")).to_contain_text("(done)")
        content = their_page.content()
        assert "ben@contoso.example" not in content and "Contoso" not in content
        screenshot(their_page, "enduser")
    finally:
        enduser.close()

    page.get_by_role("link", name="Projects").click()
    contoso = page.get_by_role("row", name="Contoso")
    expect(contoso.get_by_role("progressbar")).to_have_attribute("value", "100")
    steps = CutoverStep.objects.filter(project__client_name="Contoso").count()
    expect(contoso).to_contain_text(f"0 / {steps}")  # checklist: per-user parts are no steps
    screenshot(page, "dashboard")
