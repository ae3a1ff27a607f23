"""In a real browser: an owner invites a colleague as a viewer, the colleague opens the
one-time link, signs up and sees only that project; the project page offers a viewer no
action, and a forged POST (with a valid CSRF token) answers 403."""

import pytest
from playwright.sync_api import expect

from mailboxes.models import MailboxPass
from tests.conftest import make_project
from tests.servers.chromium import log_in

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

FORGED_POST = """async (url) => {
    const headers = JSON.parse(document.body.getAttribute("hx-headers"));
    const body = new URLSearchParams({action: "full", scope: "filtered"});
    const response = await fetch(url, {method: "POST", headers, body});
    return response.status;
}"""


def test_an_invited_viewer_sees_only_that_project_and_changes_nothing(
    live_server, alice, browser_context, chromium, screenshot
):
    contoso = make_project(members=[alice], client_name="Contoso")
    make_project(members=[alice], client_name="Fabrikam")
    contoso.mailboxes.create(source_address="ann@contoso.example", target_address="ann@new.example")

    owner = browser_context.new_page()
    log_in(owner, live_server.url)
    owner.get_by_role("link", name="Contoso").click()
    owner.get_by_role("link", name="Team").click()
    owner.fill("#id_email", "dora@example.org")
    owner.select_option("#id_role", "viewer")
    owner.get_by_role("button", name="Invite").click()
    link = owner.locator("#invite-link").input_value()
    assert link.startswith(f"{live_server.url}/invite/")
    expect(owner.get_by_text("dora@example.org as Viewer")).to_be_visible()
    screenshot(owner, "invited")

    colleague_context = chromium.new_context()
    colleague = colleague_context.new_page()
    colleague.goto(link)
    expect(colleague.get_by_role("heading", name="Join Contoso")).to_be_visible()
    colleague.fill("#id_username", "dora")
    colleague.fill("#id_password1", "Tall-Ships-Sail-2026")
    colleague.fill("#id_password2", "Tall-Ships-Sail-2026")
    colleague.get_by_role("button", name="Sign up and join").click()

    expect(colleague.get_by_role("heading", name="Contoso")).to_be_visible()
    nav = colleague.get_by_role("navigation", name="Project")
    expect(nav.get_by_role("link", name="Team")).to_be_visible()
    for name in ("Edit project", "Add mailbox", "Import CSV"):
        expect(nav.get_by_role("link", name=name)).to_have_count(0)
    for name in ("Apply to mailboxes", "Test source connection", "Test target connection"):
        expect(colleague.get_by_role("button", name=name)).to_have_count(0)
    expect(colleague.get_by_role("link", name="ann@contoso.example")).to_be_visible()
    screenshot(colleague, "viewer-project")

    url = f"/projects/{contoso.pk}/mailboxes/actions/"
    assert colleague.evaluate(FORGED_POST, url) == 403
    assert not MailboxPass.objects.exists()

    colleague.goto(f"{live_server.url}/")
    expect(colleague.get_by_role("link", name="Contoso")).to_be_visible()
    expect(colleague.get_by_text("Fabrikam")).to_have_count(0)

    colleague.goto(link)
    expect(colleague.get_by_text("This invitation was used already.")).to_be_visible()
    colleague_context.close()
