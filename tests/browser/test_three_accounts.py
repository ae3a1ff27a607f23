"""Every mailbox is its own account, driven in a real browser against real Dovecot servers.

Three users, each with a different password and different mail, are imported with their own
logins (one reads the source through the master user), copied by a real worker, and each
target is read back over IMAP: it holds exactly its own source's mail. The same with only a
tenant Username and no per-mailbox logins never copies one account into another: each mailbox
logs in by the rule, and the one whose password differs fails, in red, with Dovecot's reason.
Two mailboxes mapped to one account are refused before anything is copied.
"""

import uuid

import pytest
from django.conf import settings
from playwright.sync_api import expect

from mailboxes.models import Mailbox
from tests.corpus import corpus_messages
from tests.engine.messages import message
from tests.servers.chromium import log_in
from tests.servers.dovecot import DovecotUser, RawMessage

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def add_user(server, local: str, domain: str, password: str | None = None) -> DovecotUser:
    name, password = server.add_user(f"{local}{uuid.uuid4().hex[:6]}@{domain}", password)
    return DovecotUser(server, name, password)


def fill(user: DovecotUser, number: int) -> None:
    """Each user's own mail: a slice of the corpus, a folder of its own, a note naming it."""
    corpus = corpus_messages()
    user.load("INBOX", corpus[number::4][:12])
    user.load(f"Projects/{user.name.split('@')[0]}", corpus[50 + number :: 4][:4])
    user.load("INBOX", [RawMessage(message(f"For {user.name}", "only mine", f"{user.name}.x"))])


def create_project(page, name: str, source: dict, target: dict) -> None:
    page.get_by_role("link", name="New project").first.click()
    page.fill("#id_client_name", name)
    for side, fields in (("source", source), ("target", target)):
        for field, value in fields.items():
            page.fill(f"#id_{side}-{field}", str(value))
        page.select_option(f"#id_{side}-security", "plain")
        page.uncheck(f"#id_{side}-verify_tls")
    page.get_by_role("button", name="Save project").click()
    expect(page.get_by_role("heading", name=name)).to_be_visible()


def import_csv(page, lines: list[str]) -> None:
    page.get_by_role("link", name="Import CSV").click()
    page.set_input_files(
        "input[type=file]",
        files=[{"name": "users.csv", "mimeType": "text/csv", "buffer": "\n".join(lines).encode()}],
    )
    page.get_by_role("button", name="Import").click()


def full_pass_for_all(page) -> None:
    page.select_option("#bulk-action", "full")
    page.check("input[name=scope][value=filtered]")
    page.get_by_role("button", name="Apply to mailboxes").click()
    expect(page.get_by_text("Full pass started for 3 mailboxes.")).to_be_visible()


def row(page, address: str):
    return page.locator("tr", has=page.get_by_role("link", name=address, exact=True))


def server(dovecot) -> dict:
    return {"endpoint": dovecot.host, "port": dovecot.port}


@pytest.fixture
def worker(start_worker):
    return start_worker("worker-var", broker_url=settings.CELERY_BROKER_URL)


def test_each_mailbox_logs_in_as_its_own_account(
    live_server, alice, browser_context, screenshot, dovecot_a, dovecot_b, worker
):
    page = browser_context.new_page()
    log_in(page, live_server.url)

    # Own logins, each with its own password; cat has none and goes through the master user.
    sources = [add_user(dovecot_a, local, "contoso.example") for local in ("ann", "ben", "cat")]
    targets = [add_user(dovecot_b, local, "fabrikam.example") for local in ("ann", "ben", "cat")]
    for number, user in enumerate(sources):
        fill(user, number)
    master = {"impersonation": dovecot_a.master_user, "secret": dovecot_a.master_password}
    create_project(page, "Contoso", {**server(dovecot_a), **master}, server(dovecot_b))
    lines = [
        "Source Address,Target Address,Source Login,Source Password,Target-Login,target_password"
    ]
    for number, (source, target) in enumerate(zip(sources, targets, strict=True)):
        own = f"{source.name},{source.password}" if number < 2 else ","
        lines.append(f"{source.name},{target.name},{own},{target.name},{target.password}")
    import_csv(page, lines)
    for source in sources:
        expect(page.get_by_role("link", name=source.name, exact=True)).to_be_visible()
    expect(row(page, sources[0].name)).to_contain_text(f"logs in as {sources[0].name}")
    expect(row(page, sources[2].name)).to_contain_text(
        f"{dovecot_a.master_user} acting for {sources[2].name}"
    )
    assert sources[0].password not in page.content()

    full_pass_for_all(page)
    expect(page.locator("#live")).to_contain_text("3 done", timeout=90_000)
    screenshot(page, "own-logins-done")
    for source, target in zip(sources, targets, strict=True):
        assert target.holdings().bodies() == source.holdings().bodies()

    # Only a tenant Username and password: each mailbox logs in as its own address with the
    # tenant password; fay's password is another one, so fay fails and nobody gets her mail.
    shared_source, shared_target = uuid.uuid4().hex, uuid.uuid4().hex
    sources = [
        add_user(dovecot_a, "dan", "northwind.example", shared_source),
        add_user(dovecot_a, "eve", "northwind.example", shared_source),
        add_user(dovecot_a, "fay", "northwind.example"),
    ]
    targets = [
        add_user(dovecot_b, local, "northwind.test", shared_target)
        for local in ("dan", "eve", "fay")
    ]
    for number, user in enumerate(sources):
        fill(user, number + 1)
    page.get_by_role("link", name="Projects").click()
    create_project(
        page,
        "Northwind",
        {**server(dovecot_a), "username": sources[0].name, "secret": shared_source},
        {**server(dovecot_b), "username": targets[0].name, "secret": shared_target},
    )
    import_csv(
        page,
        ["source_address,target_address"]
        + [f"{s.name},{t.name}" for s, t in zip(sources, targets, strict=True)],
    )
    expect(row(page, sources[1].name)).to_contain_text(f"logs in as {sources[1].name}")
    full_pass_for_all(page)
    fay = row(page, sources[2].name)
    expect(fay).to_have_class("failed", timeout=90_000)
    expect(page.locator("#live")).to_contain_text("2 done", timeout=90_000)
    expect(fay).to_contain_text("Authentication failed")
    expect(fay.locator(".badge")).to_have_text("Failed")
    assert fay.evaluate("row => getComputedStyle(row.querySelector('td')).backgroundColor") != (
        "rgb(255, 255, 255)"
    )
    screenshot(page, "tenant-login-one-refused")
    for source, target in zip(sources[:2], targets[:2], strict=True):
        assert target.holdings().bodies() == source.holdings().bodies()
    assert targets[2].holdings().messages == 0

    # Two mailboxes mapped to one account: refused at import, nothing created or copied.
    before = Mailbox.objects.count()
    twin = add_user(dovecot_a, "gus", "northwind.example")
    import_csv(
        page,
        [
            "source_address,target_address,source_login,source_password",
            f"{twin.name},gus@northwind.test,{twin.name},{twin.password}",
            f"hal@northwind.example,hal@northwind.test,{twin.name},{twin.password}",
        ],
    )
    expect(page.get_by_text("would all log in to the source as")).to_be_visible()
    screenshot(page, "two-mailboxes-one-account")
    assert Mailbox.objects.count() == before
    assert twin.password not in page.content()
