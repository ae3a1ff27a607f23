"""audit.log.record: who, from where; entries are append-only."""

import pytest
from django.contrib.admin.sites import site
from django.test import RequestFactory

from audit.log import Action, record
from audit.models import AppendOnly, AuditEntry


def request_from(user, **meta):
    request = RequestFactory().post("/", **meta)
    request.user = user
    return request


@pytest.mark.django_db
class TestRecord:
    def test_a_user_and_the_address_the_request_came_from(self, project, alice):
        entry = record(request_from(alice, REMOTE_ADDR="192.0.2.7"), project, Action.PASS_PAUSED)
        assert (entry.actor, entry.actor_label, entry.remote_addr) == (alice, "alice", "192.0.2.7")

    def test_x_forwarded_for_is_ignored_unless_trusted(self, project, alice, settings):
        request = request_from(alice, REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="6.6.6.6")
        assert record(request, project, Action.PASS_PAUSED).remote_addr == "10.0.0.1"
        settings.AUDIT_TRUST_X_FORWARDED_FOR = True
        request = request_from(
            alice, REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.4"
        )
        # Only the last address is the one our proxy appended: the rest the client wrote.
        assert record(request, project, Action.PASS_PAUSED).remote_addr == "198.51.100.4"

    def test_no_request_names_what_acted(self, project):
        entry = record(None, project, "pass_started", "x", actor_label="schedule")
        assert (entry.actor, entry.actor_label, entry.remote_addr) == (None, "schedule", None)
        assert record(None, project, Action.NOTICE_SENT).actor_label == "command line"

    def test_an_unknown_action_is_refused(self, project):
        with pytest.raises(ValueError):
            record(None, project, "pass_exploded")

    def test_the_label_outlives_the_user(self, project, alice):
        record(request_from(alice), project, Action.MAILBOX_ADDED, "Added the mailbox a@b.c")
        alice.delete()
        entry = project.audit_entries.get()
        assert (entry.actor, entry.actor_label) == (None, "alice")


@pytest.mark.django_db
class TestAppendOnly:
    def test_an_entry_cannot_be_changed_or_deleted(self, project):
        entry = record(None, project, Action.PASS_STARTED, "Started a delta pass")
        entry.detail = "nothing happened"
        with pytest.raises(AppendOnly):
            entry.save()
        with pytest.raises(AppendOnly):
            entry.delete()
        with pytest.raises(AppendOnly):
            AuditEntry.objects.filter(pk=entry.pk).update(detail="x")
        with pytest.raises(AppendOnly):
            AuditEntry.objects.filter(pk=entry.pk).delete()
        assert AuditEntry.objects.get(pk=entry.pk).detail == "Started a delta pass"

    def test_the_admin_only_reads(self, project, alice):
        admin = site._registry[AuditEntry]
        request = request_from(alice)
        assert not admin.has_add_permission(request)
        assert not admin.has_change_permission(request)
        assert not admin.has_delete_permission(request)

    def test_deleting_the_project_takes_its_log(self, project):
        record(None, project, Action.PASS_STARTED)
        project.delete()
        assert not AuditEntry.objects.exists()
