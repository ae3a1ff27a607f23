"""Adding, editing and deleting one mailbox in the UI: what the consultant sees, what is stored."""

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from mailboxes.models import CopiedItem, Mailbox, MailboxPass
from projects.fields import UnreadableSecret
from tests.conftest import make_project
from tests.rendered import messages_after

from .conftest import add_mailbox


def add_url(project):
    return reverse("mailbox_add", args=[project.pk])


def edit_url(mailbox):
    return reverse("mailbox_edit", args=[mailbox.project_id, mailbox.pk])


def delete_url(mailbox):
    return reverse("mailbox_delete", args=[mailbox.project_id, mailbox.pk])


def raw_column(mailbox, column):
    """The value as stored in the database (a Fernet token), not as Python reads it."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM mailboxes_mailbox WHERE id = %s", [mailbox.pk])
        return cursor.fetchone()[0]


@pytest.fixture
def imap_project(alice, bob):
    """Both sides IMAP: each mailbox may have its own logins; the target has a master user."""
    project = make_project(members=[alice, bob])
    project.target.kind, project.target.endpoint = "imap", "imap.new.example"
    project.target.impersonation, project.target.secret = "master", "master-secret"
    project.target.save()
    return project


@pytest.mark.django_db
class TestMailboxAdd:
    def test_form_says_who_logs_in_by_the_rule(self, client, bob, imap_project):
        client.force_login(bob)
        response = client.get(add_url(imap_project))
        html = response.content.decode()
        assert response.status_code == 200
        # The source tenant has a Username but no master user: each mailbox logs in as itself.
        assert "Logs in as <strong>the source address</strong>" in html
        assert "Logs in as <strong>master acting for the target address</strong>" in html
        assert 'type="password"' in html and "Clear the stored" not in html

    def test_adds_a_mailbox_with_its_own_logins(self, client, bob, imap_project):
        client.force_login(bob)
        data = {
            "source_address": " Ann@Contoso.example ",
            "target_address": "ann@fabrikam.example",
            "display_name": "Ann Archer",
            "source_login": "ann.archer",
            "source_password": "old-secret",
            "target_login": "",
            "target_password": "",
        }
        response = client.post(add_url(imap_project), data)
        mailbox = imap_project.mailboxes.get()
        assert response.status_code == 302 and response["Location"] == mailbox.get_absolute_url()
        assert messages_after(client, response) == ["Mailbox ann@contoso.example added."]
        assert (mailbox.source_address, mailbox.display_name) == (
            "ann@contoso.example",
            "Ann Archer",
        )
        assert mailbox.login("source") == ("ann.archer", "old-secret")
        assert mailbox.login_label("source") == "ann.archer"
        assert mailbox.login_label("target") == "master acting for ann@fabrikam.example"
        assert "old-secret" not in raw_column(mailbox, "source_password")  # encrypted at rest

    def test_a_password_needs_its_login(self, client, bob, imap_project):
        client.force_login(bob)
        data = {"source_address": "ann@contoso.example", "target_address": "ann@fab.example"}
        response = client.post(add_url(imap_project), {**data, "source_password": "pw"})
        assert response.status_code == 200
        assert "A password needs the login it belongs to" in response.content.decode()
        assert not imap_project.mailboxes.exists()

    def test_addresses_are_unique_in_the_project(self, client, bob, imap_project):
        add_mailbox(imap_project, "ann")  # ann@contoso.example -> ann@new.example
        client.force_login(bob)
        response = client.post(
            add_url(imap_project),
            {"source_address": "ANN@contoso.example", "target_address": "ann@new.example"},
        )
        html = response.content.decode()
        assert "Another mailbox of this project has the source ann@contoso.example." in html
        assert "Another mailbox of this project has the target ann@new.example." in html
        assert imap_project.mailboxes.count() == 1

    def test_two_mailboxes_on_one_account_are_refused_naming_both(self, client, bob, imap_project):
        add_mailbox(imap_project, "ann", source_login="shared")
        client.force_login(bob)
        response = client.post(
            add_url(imap_project),
            {
                "source_address": "ben@contoso.example",
                "target_address": "ben@new.example",
                "source_login": "shared",
                "source_password": "pw",
            },
        )
        html = response.content.decode()
        assert response.status_code == 200
        assert (
            "ann@contoso.example and ben@contoso.example would all log in to the source as "
            "shared" in html
        )
        assert imap_project.mailboxes.count() == 1

    def test_a_tenant_acting_for_every_mailbox_takes_no_login(self, client, bob, project):
        # The fixture's target is a maildir: files, no login of a mailbox's own.
        client.force_login(bob)
        html = client.get(add_url(project)).content.decode()
        assert 'name="source_login"' in html and 'name="target_login"' not in html
        assert "Logs in as <strong>files under /tmp/nowhere</strong>" in html


@pytest.mark.django_db
class TestMailboxEdit:
    @pytest.fixture
    def ann(self, imap_project):
        mailbox = add_mailbox(
            imap_project, "ann", source_login="ann", source_password="s3cret-source"
        )
        Mailbox.objects.filter(pk=mailbox.pk).update(
            login_check_requested_at=timezone.now(),
            login_checked_at=timezone.now(),
            login_check_ok=True,
            login_check_message="source: Connected; target: Connected",
        )
        mailbox.refresh_from_db()
        return mailbox

    def data(self, mailbox, **changes):
        return {
            "source_address": mailbox.source_address,
            "target_address": mailbox.target_address,
            "display_name": mailbox.display_name,
            "source_login": mailbox.source_login,
            "target_login": mailbox.target_login,
            **changes,
        }

    def test_password_is_never_rendered_back(self, client, bob, ann):
        client.force_login(bob)
        html = client.get(edit_url(ann)).content.decode()
        assert "s3cret-source" not in html
        assert "A password is stored (encrypted); leave empty to keep it." in html
        assert "Clear the stored source password" in html
        assert "Clear the stored target password" not in html  # none stored there
        assert "Logs in as <strong>ann</strong>" in html

    def test_blank_password_keeps_the_stored_one(self, client, bob, ann):
        client.force_login(bob)
        response = client.post(edit_url(ann), self.data(ann, display_name="Ann A."))
        assert messages_after(client, response) == ["Mailbox ann@contoso.example saved."]
        ann.refresh_from_db()
        assert ann.display_name == "Ann A." and ann.source_password == "s3cret-source"
        assert ann.login_check_ok is True  # only the name changed: the last test still holds

    def test_new_login_replaces_and_forgets_the_last_login_test(self, client, bob, ann):
        client.force_login(bob)
        changes = {"source_login": "ann.archer", "source_password": "new-one"}
        client.post(edit_url(ann), self.data(ann, **changes))
        ann.refresh_from_db()
        assert ann.login("source") == ("ann.archer", "new-one")
        assert ann.login_check_ok is None and ann.login_check_message == ""
        assert ann.login_check_requested_at is None

    def test_clear_the_stored_password(self, client, bob, ann):
        client.force_login(bob)
        client.post(edit_url(ann), self.data(ann, clear_source_password="on"))
        ann.refresh_from_db()
        assert ann.login("source") == ("ann", "")

    def test_clearing_and_typing_a_password_at_once_is_refused(self, client, bob, ann):
        client.force_login(bob)
        data = self.data(ann, clear_source_password="on", source_password="x")
        response = client.post(edit_url(ann), data)
        assert "Either enter a new password or clear the stored one" in response.content.decode()
        ann.refresh_from_db()
        assert ann.source_password == "s3cret-source"

    def test_removing_the_login_drops_its_password(self, client, bob, ann):
        client.force_login(bob)
        client.post(edit_url(ann), self.data(ann, source_login=""))
        ann.refresh_from_db()
        assert ann.login("source") == ("", "")
        assert ann.login_label("source") == "ann@contoso.example"

    def test_a_password_no_key_decrypts_says_so_and_is_kept(self, client, bob, ann):
        # Saved under another FIELD_ENCRYPTION_KEY: it reads as unreadable, never as empty.
        Mailbox.objects.filter(pk=ann.pk).update(
            target_login="ann", target_password=UnreadableSecret("gAAAA-old-key-token")
        )
        ann.refresh_from_db()
        client.force_login(bob)
        html = client.get(edit_url(ann)).content.decode()
        assert "cannot be decrypted" in html and "gAAAA-old-key-token" not in html
        client.post(edit_url(ann), self.data(ann, display_name="Ann"))
        # Kept as it was, so restoring the old key recovers it.
        assert raw_column(ann, "target_password") == "gAAAA-old-key-token"

    def test_a_conflicting_login_names_the_other_mailbox(self, client, bob, ann, imap_project):
        add_mailbox(imap_project, "ben", source_login="ben")
        client.force_login(bob)
        response = client.post(edit_url(ann), self.data(ann, source_login="BEN"))
        html = response.content.decode()
        expected = (
            "ann@contoso.example and ben@contoso.example would all log in to the source as ben"
        )
        assert expected in html
        ann.refresh_from_db()
        assert ann.source_login == "ann"

    def test_a_pass_under_way_blocks_editing(self, client, bob, ann):
        Mailbox.objects.filter(pk=ann.pk).update(state=Mailbox.State.COPYING)
        client.force_login(bob)
        for request in (client.get, lambda url: client.post(url, self.data(ann))):
            response = request(edit_url(ann))
            assert response.status_code == 302 and response["Location"] == ann.get_absolute_url()
            assert messages_after(client, response) == [
                "A pass of ann@contoso.example is under way (copying): edit it once the pass "
                "is done, or pause it first."
            ]

    def test_counters_a_worker_writes_meanwhile_are_kept(self, client, bob, ann):
        client.force_login(bob)
        Mailbox.objects.filter(pk=ann.pk).update(items_on_target=77)
        client.post(edit_url(ann), self.data(ann, display_name="Ann"))
        ann.refresh_from_db()
        assert ann.items_on_target == 77

    def test_mailbox_page_links_to_edit_and_delete(self, client, bob, ann):
        client.force_login(bob)
        html = client.get(ann.get_absolute_url()).content.decode()
        assert edit_url(ann) in html and delete_url(ann) in html
        assert "Logs in as ann (source), master acting for ann@new.example (target)." in html


@pytest.mark.django_db
class TestMailboxDelete:
    @pytest.fixture
    def ann(self, imap_project):
        mailbox = add_mailbox(imap_project, "ann", Mailbox.State.DONE, copied=2, total=2)
        MailboxPass.objects.create(mailbox=mailbox, kind="full", state=MailboxPass.State.DONE)
        CopiedItem.objects.bulk_create(
            CopiedItem(mailbox=mailbox, source_path="INBOX", source_id=f"1:{n}", fingerprint="f")
            for n in range(2)
        )
        return mailbox

    def test_asks_first_and_says_what_goes(self, client, bob, ann):
        client.force_login(bob)
        response = client.get(delete_url(ann))
        html = response.content.decode()
        assert response.status_code == 200
        assert "its copy records: 2 items" in html and "1 pass," in html
        assert "Nothing is deleted on the servers" in html
        assert Mailbox.objects.filter(pk=ann.pk).exists()

    def test_post_deletes_mailferrys_records_only(self, client, bob, ann, imap_project):
        client.force_login(bob)
        response = client.post(delete_url(ann))
        assert response.status_code == 302
        assert response["Location"] == imap_project.get_absolute_url()
        assert messages_after(client, response) == [
            "Mailbox ann@contoso.example deleted from mailferry; nothing was changed on the "
            "servers."
        ]
        assert not Mailbox.objects.filter(pk=ann.pk).exists()
        assert not CopiedItem.objects.exists() and not MailboxPass.objects.exists()

    def test_a_pass_under_way_blocks_deleting(self, client, bob, ann):
        Mailbox.objects.filter(pk=ann.pk).update(state=Mailbox.State.QUEUED)
        client.force_login(bob)
        response = client.post(delete_url(ann))
        assert response["Location"] == ann.get_absolute_url()
        assert (
            "A pass of ann@contoso.example is under way (queued)"
            in messages_after(client, response)[0]
        )
        assert Mailbox.objects.filter(pk=ann.pk).exists()

    def test_outsider_cannot_delete(self, client, charlie, ann):
        client.force_login(charlie)
        assert client.post(delete_url(ann)).status_code == 404
        assert Mailbox.objects.filter(pk=ann.pk).exists()
