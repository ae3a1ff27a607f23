"""A project whose tenants are both Exchange, copied by the engine (the same pipeline as IMAP):
every item kind arrives, a delta pass copies only what is new, a corrupt source item becomes an
ItemError with the server's code while the folder goes on."""

import pytest

from mailboxes.models import FolderJob, ItemError
from projects.models import Project
from tests.corpus import corpus_mime
from tests.engine.conftest import make_mailbox, run_pass, tenant_for
from tests.servers.ews_server import start_ews_server

from .conftest import ALICE, BOB, endpoint

pytestmark = pytest.mark.django_db


@pytest.fixture
def exchange_mailbox(source, target, settings):
    settings.COPY_BATCH_ITEMS = 4
    return make_mailbox(endpoint(source, ALICE), endpoint(target, BOB), ALICE, BOB)


def test_every_kind_arrives_and_a_delta_copies_only_the_new(source, target, exchange_mailbox):
    done = run_pass(exchange_mailbox, "full")

    assert (done.state, done.items_copied, done.items_failed) == ("done", 11, 0)
    copies = sorted((i.item_class, i.mime) for i in target.state.items.values())
    assert copies == sorted((i.item_class, i.mime) for i in source.state.items.values())

    inbox = source.state.folder(ALICE, "Inbox")
    late = source.state.add_item(inbox, corpus_mime(8)[7])
    delta = run_pass(exchange_mailbox, "delta")

    assert (delta.items_total, delta.items_copied) == (1, 1)
    assert sum(i.mime == late.mime for i in target.state.items.values()) == 1
    assert len(target.state.items) == 12


def test_corrupt_source_item_is_an_item_error_and_the_rest_arrives(
    source, target, exchange_mailbox
):
    inbox = source.state.folder(ALICE, "Inbox")
    corrupt = source.state.items_in(inbox)[2]
    source.state.corrupt_ids.add(corrupt.id)

    done = run_pass(exchange_mailbox, "full")

    assert (done.state, done.items_copied, done.items_failed) == ("done", 10, 1)
    error = ItemError.objects.get()
    assert error.source_id == corrupt.id
    assert error.code == "ErrorItemCorrupt"
    assert "could not hand the item over" in error.reason
    assert corrupt.mime not in {i.mime for i in target.state.items.values()}


def test_mail_goes_from_exchange_to_a_maildir_as_mime(source, tmp_path, settings):
    """EWS to another protocol: mail travels as MIME with its read state and received date;
    folders of kinds that only exist in Exchange fail with a clear reason, never silently."""
    from mailboxes.connectors.base import Endpoint
    from mailboxes.connectors.maildir import MaildirConnector

    target = Endpoint(kind="maildir", host=str(tmp_path))
    mailbox = make_mailbox(endpoint(source, ALICE), target, ALICE, "alice")

    done = run_pass(mailbox, "full")

    inbox = source.state.folder(ALICE, "Inbox")
    originals = {i.mime: i for i in source.state.items_in(inbox)}
    with MaildirConnector(target, "alice") as maildir:
        folder = next(f for f in maildir.folders() if f.role == "inbox")
        ids = [ref.source_id for ref in maildir.changes(folder, {}).items]
        arrived = maildir.fetch(folder, ids)
    assert sorted(i.data for i in arrived) == sorted(originals)
    for item in arrived:
        original = originals[item.data]
        assert ("\\Seen" in item.flags) == original.is_read
        assert item.received.timestamp() == original.received.timestamp()
    assert done.items_copied == 7  # six in Inbox, one in Inbox/Projects
    refused = FolderJob.objects.filter(state="failed").order_by("source_path")
    assert [job.source_path for job in refused] == ["Calendar", "Contacts", "Notes", "Tasks"]
    assert all("cannot travel as RFC 822" in job.error for job in refused)


def test_mail_goes_from_exchange_to_an_imap_server(source, dovecot_b, dovecot_user):
    """Exchange to IMAP: the MIME bytes, read state and received date reach Dovecot; folders
    IMAP cannot hold fail one by one with the reason, and the mail folders are still copied."""
    from tests.engine.snapshots import snapshot

    target = dovecot_user(dovecot_b)
    mailbox = make_mailbox(endpoint(source, ALICE), target.endpoint(), ALICE, target.name)

    done = run_pass(mailbox, "full")

    assert done.items_copied == 7
    refused = FolderJob.objects.filter(state="failed").order_by("source_path")
    assert [job.source_path for job in refused] == [
        "Calendar",
        "Contacts",
        "Notes",
        "Tasks",
        "Team Calendar",
    ]
    assert all("IMAP folders hold mail only" in job.error for job in refused)
    arrived = snapshot(target.endpoint(), target.name)[("INBOX",)]
    expected = {
        (i.mime, i.is_read, i.received.timestamp())
        for i in source.state.items_in(source.state.folder(ALICE, "Inbox"))
    }
    assert {(data, "\\Seen" in flags, at) for data, flags, at in arrived} == expected
    assert sum(arrived.values()) == 6


USERS = ("ann", "ben", "cat")


@pytest.fixture
def impersonated_tenants(settings):
    """Three users on each side, each with their own password and their own mail; the source
    tenant logs in as an admin acting for each of them, the target as each user."""
    settings.COPY_BATCH_ITEMS = 4
    source, target = start_ews_server(), start_ews_server()
    source.add_user("admin@src.test", "pw-admin")
    mail = iter(corpus_mime(12))
    for n, user in enumerate(USERS):
        source.add_user(f"{user}@src.test", f"pw-src-{user}")
        target.add_user(f"{user}@dst.test", f"pw-dst-{user}")
        for _ in range(3 + n):
            source.add_item(source.folder(f"{user}@src.test", "Inbox"), next(mail))
    yield source, target
    source.stop()
    target.stop()


def impersonation_project(source, target):
    admin = endpoint(source, "admin@src.test", "pw-admin", impersonation="admin@src.test")
    project = Project.objects.create(
        client_name="Contoso", source=tenant_for(admin), target=tenant_for(endpoint(target, ""))
    )
    return [
        project.mailboxes.create(
            source_address=f"{user}@src.test",
            target_address=f"{user}@dst.test",
            target_login=f"{user}@dst.test",
            target_password=f"pw-dst-{user}",
        )
        for user in USERS
    ]


def inbox_mail(server, address):
    return sorted(i.mime for i in server.items_in(server.folder(address, "Inbox")))


def test_an_impersonation_account_copies_each_mailbox_into_its_own(impersonated_tenants):
    source, target = impersonated_tenants
    source.state.grant_impersonation("admin@src.test")

    for mailbox in impersonation_project(source, target):
        done = run_pass(mailbox, "full")

        assert (done.state, done.items_failed) == ("done", 0), mailbox.error
        own = inbox_mail(source, mailbox.source_address)
        assert done.items_copied == len(own)
        assert inbox_mail(target, mailbox.target_address) == own
    assert len(target.state.items) == 3 + 4 + 5


def test_an_admin_without_the_impersonation_role_copies_nothing_and_says_why(
    impersonated_tenants,
):
    source, target = impersonated_tenants

    for mailbox in impersonation_project(source, target):
        run_pass(mailbox, "full")

        assert mailbox.state == "failed"
        assert f"admin@src.test may not impersonate {mailbox.source_address}" in mailbox.error
    assert target.state.items == {}
