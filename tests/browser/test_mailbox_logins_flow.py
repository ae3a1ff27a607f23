"""A consultant in a real browser: adds three mailboxes with their own logins on real Dovecot
servers (one with a wrong password), tests the logins through a real worker, fixes the wrong
one, and deletes a mailbox; refused on the way: two mailboxes on one account."""

import pytest
from playwright.sync_api import expect

from mailboxes.models import Mailbox
from projects.models import Project, Tenant
from tests.servers.chromium import log_in

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def contoso(alice, dovecot_a, dovecot_b):
    """Source on Dovecot "a", target on Dovecot "b"; the tenants know no account at all."""

    def tenant(server):
        return Tenant.objects.create(
            kind="imap", endpoint=server.host, port=server.port, security="plain", verify_tls=False
        )

    project = Project.objects.create(
        client_name="Contoso", source=tenant(dovecot_a), target=tenant(dovecot_b)
    )
    project.members.set([alice])
    return project


@pytest.fixture
def users(dovecot_a, dovecot_b, dovecot_user):
    """(source user, target user) for three people, each with passwords of their own."""
    return [(dovecot_user(dovecot_a), dovecot_user(dovecot_b)) for _ in range(3)]


def address(user, domain):
    return f"{user.name}@{domain}"


def add_mailbox(page, source, target, source_password=None):
    page.get_by_role("link", name="Add mailbox").click()
    expect(page.get_by_role("heading", name="Add a mailbox")).to_be_visible()
    # Until a login is given, each side logs in as the mailbox's address (the tenant's rule).
    expect(page.locator("#source-logs-in-as")).to_contain_text("the source address")
    page.fill("#id_source_address", address(source, "contoso.example"))
    page.fill("#id_target_address", address(target, "fabrikam.example"))
    page.fill("#id_source_login", source.name)
    page.fill("#id_source_password", source_password or source.password)
    page.fill("#id_target_login", target.name)
    page.fill("#id_target_password", target.password)
    page.get_by_role("button", name="Add mailbox").click()
    expect(page.get_by_text(f"Mailbox {address(source, 'contoso.example')} added.")).to_be_visible()
    expect(page.locator("#logs-in-as")).to_contain_text(f"{source.name} (source)")
    page.get_by_role("link", name="Contoso").click()


def row(page, source):
    return page.locator("tr", has=page.get_by_role("link", name=address(source, "contoso.example")))


def test_add_test_logins_fix_and_delete(
    live_server, contoso, users, browser_context, screenshot, start_worker
):
    start_worker("worker")
    page = browser_context.new_page()
    log_in(page, live_server.url)
    page.get_by_role("link", name="Contoso").click()

    (ann_src, ann_tgt), (ben_src, ben_tgt), (cid_src, cid_tgt) = users
    add_mailbox(page, ann_src, ann_tgt)
    add_mailbox(page, ben_src, ben_tgt, source_password="not-bens-password")
    add_mailbox(page, cid_src, cid_tgt)
    for source, _ in users:
        expect(row(page, source)).to_contain_text(f"logs in as {source.name} (source)")

    # A fourth mailbox on Ann's source account is refused, naming both.
    page.get_by_role("link", name="Add mailbox").click()
    page.fill("#id_source_address", "dup@contoso.example")
    page.fill("#id_target_address", "dup@fabrikam.example")
    page.fill("#id_source_login", ann_src.name)
    page.get_by_role("button", name="Add mailbox").click()
    names = " and ".join(sorted([address(ann_src, "contoso.example"), "dup@contoso.example"]))
    expect(page.get_by_role("alert")).to_contain_text(
        f"{names} would all log in to the source as {ann_src.name}"
    )
    screenshot(page, "identity-refused")
    assert Mailbox.objects.count() == 3
    page.get_by_role("link", name="Cancel").click()

    # Test logins for every mailbox: the rows fill in live, the page is not reloaded.
    page.evaluate("window.notReloaded = true")
    page.select_option("#bulk-action", "logins")
    page.check("input[name=scope][value=filtered]")
    page.get_by_role("button", name="Apply to mailboxes").click()
    expect(page.get_by_text("Testing the logins of 3 mailboxes")).to_be_visible()
    page.evaluate("window.notReloaded = true")
    for source in (ann_src, cid_src):
        expect(row(page, source)).to_contain_text("✔ logins work", timeout=30_000)
    wrong = row(page, ben_src)
    expect(wrong).to_contain_text("✘ source: IMAP login refused for", timeout=30_000)
    expect(wrong).to_contain_text("Authentication failed")  # Dovecot's own reason
    expect(wrong).to_contain_text("target: Connected")
    expect(page.locator("text=testing the logins…")).to_have_count(0)
    assert page.evaluate("window.notReloaded") is True, "the page was reloaded"
    screenshot(page, "logins-tested")

    # Fix Ben's password: the stored one is never shown; the new one replaces it.
    wrong.get_by_role("link", name="Edit").click()
    expect(page.get_by_text("A password is stored (encrypted); leave empty to keep it.").first)
    assert page.input_value("#id_source_password") == ""
    assert "not-bens-password" not in page.content()
    page.fill("#id_source_password", ben_src.password)
    page.get_by_role("button", name="Save mailbox").click()
    expect(
        page.get_by_text(f"Mailbox {address(ben_src, 'contoso.example')} saved.")
    ).to_be_visible()
    page.get_by_role("link", name="Contoso").click()
    expect(row(page, ben_src)).not_to_contain_text("✘")  # the old result no longer holds
    row(page, ben_src).locator("input[name=selected]").check()
    page.select_option("#bulk-action", "logins")
    page.get_by_role("button", name="Apply to mailboxes").click()
    expect(row(page, ben_src)).to_contain_text("✔ logins work", timeout=30_000)

    # Delete Cid: asked first, told what goes, nothing on the servers.
    page.get_by_role("link", name=address(cid_src, "contoso.example"), exact=True).click()
    page.get_by_role("link", name="Delete mailbox").click()
    expect(page.get_by_text("Nothing is deleted on the servers")).to_be_visible()
    screenshot(page, "delete-confirm")
    page.get_by_role("button", name="Delete the mailbox").click()
    expect(
        page.get_by_text("deleted from mailferry; nothing was changed on the servers")
    ).to_be_visible()
    expect(page.get_by_role("link", name=address(cid_src, "contoso.example"))).to_have_count(0)
    assert sorted(Mailbox.objects.values_list("login_check_ok", flat=True)) == [True, True]
    assert cid_src.maildir.exists()  # still there on the server
    screenshot(page, "after-delete")
