"""Every figure a page shows is what the mail servers hold.

Three users on real Dovecot servers, each with their own password and their own mail (one read
through the source's master user), go through pre-stage, full, an empty delta, a delta with new
mail and flag changes, pause, resume, a refused login and a retry. After every step the mailbox
page, the project page, the dashboard and the end-user page are read as rendered and compared
with what imaplib counts on the servers themselves.
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from mailboxes import engine, links, services
from mailboxes.models import Mailbox
from projects.models import Project, Tenant
from tests.corpus import corpus_messages
from tests.engine.messages import message
from tests.servers.dovecot import RawMessage

pytestmark = pytest.mark.django_db

RECENT = 4  # messages per user newer than the pre-stage cut-off


@dataclass
class User:
    mailbox: Mailbox
    source: object
    target: object


def recent(name: str, count: int, start: int = 0) -> list[RawMessage]:
    now = datetime.now(UTC)
    return [
        RawMessage(
            message(f"{name} recent {i}", f"new mail {i} for {name}", f"{name}.{i}@example.org"),
            frozenset(),
            now - timedelta(hours=i + 1),
        )
        for i in range(start, start + count)
    ]


@pytest.fixture
def migration(dovecot_a, dovecot_b, dovecot_user, alice):
    """Contoso: three users, each with old corpus mail in their own folders plus recent mail."""
    project = Project.objects.create(
        client_name="Contoso",
        source=Tenant.objects.create(
            kind="imap",
            endpoint=dovecot_a.host,
            port=dovecot_a.port,
            security="plain",
            impersonation=dovecot_a.master_user,
            secret=dovecot_a.master_password,
            verify_tls=False,
        ),
        target=Tenant.objects.create(
            kind="imap",
            endpoint=dovecot_b.host,
            port=dovecot_b.port,
            security="plain",
            verify_tls=False,
        ),
        contact_name="Helpdesk",
        contact_email="help@contoso.example",
    )
    project.members.add(alice)
    corpus = corpus_messages()
    users = []
    for number, folder in enumerate(("INBOX", "Archive/2019", "Projects")):
        source, target = dovecot_user(dovecot_a), dovecot_user(dovecot_b)
        source.load("INBOX", corpus[number::3][:20])
        if folder != "INBOX":
            source.load(folder, corpus[60 + number :: 3][:6])
        source.load("INBOX", recent(source.name, RECENT))
        # The third user has no login of its own: the source's master user acts for it.
        own_source = number < 2
        mailbox = project.mailboxes.create(
            source_address=source.name,
            target_address=f"{target.name}@new.example",
            display_name=f"User {number}",
            source_login=source.name if own_source else "",
            source_password=source.password if own_source else "",
            target_login=target.name,
            target_password=target.password,
        )
        users.append(User(mailbox, source, target))
    return project, users


def run(mailboxes, kind, older_than_days=None, steps=None):
    scheduler = engine.InlineScheduler("truth:1")
    services.start_passes(mailboxes, kind, older_than_days, scheduler)
    scheduler.run(steps)
    return scheduler


def figures(html: str, name: str) -> list[str]:
    return re.findall(rf'data-{name}="([^"]*)"', html)


def first_int(html: str, name: str) -> int:
    return int(figures(html, name)[0])


def check_pages(client, project, users, this_pass: dict | None = None):
    """The four pages against the servers; ``this_pass`` maps a user index to its expected
    (to do, copied, already there, failed) of the latest pass."""
    totals_source = totals_target = totals_bytes = 0
    for index, user in enumerate(users):
        source, target = user.source.holdings(), user.target.holdings()
        totals_source += source.messages
        totals_target += target.messages
        totals_bytes += target.size
        page = client.get(user.mailbox.get_absolute_url()).content.decode()
        assert first_int(page, "source-items") == source.messages
        assert first_int(page, "source-bytes") == source.size  # Dovecot has STATUS=SIZE
        assert first_int(page, "items-on-target") == target.messages
        assert first_int(page, "bytes-on-target") == target.size
        assert f"{target.messages:,} item" in page
        if this_pass and index in this_pass:
            to_do, copied, already, failed = this_pass[index]
            assert first_int(page, "to-do") == to_do
            assert first_int(page, "copied") == copied
            assert first_int(page, "already-there") == already
            assert first_int(page, "failed") == failed
            assert f"{copied + already + failed:,} of {to_do:,} item" in page
        enduser = client.get(links.enduser_url(user.mailbox)).content.decode()
        assert first_int(enduser, "items-on-target") == target.messages
        assert first_int(enduser, "source-items") == source.messages
        assert f"<strong>{target.messages:,} item" in enduser
        assert f"of the {source.messages:,} item" in enduser
    project_page = client.get(project.get_absolute_url()).content.decode()
    assert first_int(project_page, "source-items") == totals_source
    assert first_int(project_page, "items-on-target") == totals_target
    assert first_int(project_page, "bytes-on-target") == totals_bytes
    rows = [int(value) for value in figures(project_page, "items-on-target")[1:]]
    assert sorted(rows) == sorted(user.target.holdings().messages for user in users)
    dashboard = client.get(reverse("home")).content.decode()
    assert first_int(dashboard, "items-on-target") == totals_target
    assert first_int(dashboard, "bytes-on-target") == totals_bytes
    return project_page


def states(users) -> list[str]:
    return [Mailbox.objects.get(pk=user.mailbox.pk).state for user in users]


def test_every_figure_is_what_the_servers_hold(client, alice, migration):
    project, users = migration
    client.force_login(alice)
    mailboxes = project.mailboxes.all()
    sizes = [user.source.holdings().messages for user in users]

    run(mailboxes, "prestage", older_than_days=30)
    old = [size - RECENT for size in sizes]
    check_pages(client, project, users, {i: (old[i], old[i], 0, 0) for i in range(3)})
    assert states(users) == ["done"] * 3

    run(mailboxes, "full")
    check_pages(client, project, users, {i: (sizes[i], RECENT, old[i], 0) for i in range(3)})
    for user in users:  # each target holds exactly its own source's mail
        assert user.target.holdings().bodies() == user.source.holdings().bodies()

    run(mailboxes, "delta")
    check_pages(client, project, users, {i: (0, 0, 0, 0) for i in range(3)})

    users[0].source.load("INBOX", recent(users[0].source.name, 2, start=RECENT))
    users[1].source.load("Archive/2019", recent(users[1].source.name, 1, start=RECENT))
    flag_three(users[2].source)
    run(mailboxes, "delta")
    check_pages(client, project, users, {0: (2, 2, 0, 0), 1: (1, 1, 0, 0), 2: (0, 0, 0, 0)})
    third = client.get(users[2].mailbox.get_absolute_url()).content.decode()
    assert first_int(third, "flags-updated") == 3
    assert users[2].target.holdings().folders == users[2].source.holdings().folders

    users[0].source.load("INBOX", recent(users[0].source.name, 3, start=RECENT + 2))
    scheduler = run(mailboxes, "full", steps=3)  # the three plans: listed, nothing copied
    services.pause_mailboxes(mailboxes)
    assert states(users) == ["paused"] * 3
    page = check_pages(client, project, users)
    assert re.search(r"<li>3 paused</li>", page)
    paused = client.get(users[0].mailbox.get_absolute_url()).content.decode()
    assert "Throughput" not in paused and "ETA" not in paused
    scheduler.run()  # the queued folder steps do nothing while paused
    services.resume_mailboxes(list(Mailbox.objects.filter(project=project)), scheduler)
    scheduler.run()
    assert states(users) == ["done"] * 3
    sizes = [user.source.holdings().messages for user in users]
    check_pages(
        client,
        project,
        users,
        {0: (sizes[0], 3, sizes[0] - 3, 0), 1: (sizes[1], 0, sizes[1], 0)},
    )

    wrong = Mailbox.objects.get(pk=users[1].mailbox.pk)
    wrong.source_password = "not-the-password"
    wrong.save(update_fields=["source_password"])
    run(mailboxes, "delta")
    assert states(users) == ["done", "failed", "done"]
    page = check_pages(client, project, users)
    row = re.search(rf'<tr id="mailbox-{wrong.pk}" class="failed">.*?</tr>', page, re.S).group(0)
    assert "Authentication failed" in row
    failed_page = client.get(wrong.get_absolute_url()).content.decode()
    assert 'class="failure"' in failed_page and "Authentication failed" in failed_page
    assert "Throughput" not in failed_page and "ETA" not in failed_page
    assert "Listing the folders" not in failed_page
    assert '<progress class="failed" max="100" value="0"' in failed_page

    users[1].source.load("INBOX", recent(users[1].source.name, 2, start=RECENT + 1))
    wrong.source_password = users[1].source.password
    wrong.save(update_fields=["source_password"])
    scheduler = engine.InlineScheduler("truth:2")
    assert services.retry_failed(list(project.mailboxes.all()), scheduler) == 1
    scheduler.run()
    assert states(users) == ["done"] * 3
    check_pages(client, project, users, {1: (2, 2, 0, 0)})
    for user in users:
        assert user.target.holdings().bodies() == user.source.holdings().bodies()


def flag_three(user) -> None:
    """Flag the first three INBOX messages on the source with plain imaplib."""
    client = user.server.client(user.name, user.password)
    try:
        client.select("INBOX")
        client.store("1:3", "+FLAGS", "(\\Flagged)")
    finally:
        client.logout()
