"""Verification in the worker and on the pages: a real Celery worker verifies each mailbox
after its full pass without being asked; ``verify`` goes through the worker when one answers;
the bulk actions "Copy what is missing" and "Verify" work from the project page; the badge, the
counts and the final report's columns equal what the Dovecot servers hold."""

import csv
import io
import re

import pytest
from django.urls import reverse

from mailboxes.models import FolderMapping, Mailbox
from tests.servers.worker import wait_until

from .conftest import add_mailbox, expunge, imap_project, run, unique_messages, verify_lines

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def settled(mailboxes, verified=True):
    """Every mailbox verified (or not) with no verification queued."""
    ids = [m.pk for m in mailboxes]
    rows = Mailbox.objects.filter(pk__in=ids, verified=verified, verify_requested_at=None)
    return rows.count() == len(ids)


def test_the_worker_verifies_after_a_pass_and_the_pages_show_the_servers_counts(
    dovecot_a, dovecot_b, dovecot_user, celery_worker_process, client, alice
):
    project = imap_project(dovecot_a, dovecot_b)
    project.members.set([alice])
    FolderMapping.objects.create(project=project, source_path="Private", exclude=True)
    users = []
    for i in range(3):
        source, target = dovecot_user(dovecot_a), dovecot_user(dovecot_b)
        source.load("INBOX", unique_messages(f"page{i}", 4 + i))
        source.load("Private", unique_messages(f"page{i}-private", 1 + i))
        users.append((add_mailbox(project, source, target), source, target))
    mailboxes = [m for m, _, _ in users]

    full = run("run_pass", project.pk, "--kind", "full", "--wait")
    assert full.code == 0, full.out + full.message
    # Queued by the worker when each pass finished: no one asked.
    wait_until(lambda: settled(mailboxes), message=celery_worker_process.log)
    assert "verify_mailbox" in celery_worker_process.log()

    first, source0, target0 = users[0]
    expunge(target0, "INBOX", 3)
    checked = run("verify", project.pk)  # a worker answers: through it
    assert checked.code == 1, checked.out
    assert verify_lines(checked)[first.source_address] == (
        f"{first.source_address} verified=no missing=3 failed=0 excluded=1 extra=0"
    )
    assert "  folder INBOX: missing=3 (3 gone from the target)" in checked.out

    client.force_login(alice)
    page = client.get(project.get_absolute_url()).content.decode()
    for mailbox, source, target in users:
        mailbox.refresh_from_db()
        badge = re.search(
            rf'id="verified-{mailbox.pk}" data-items-missing="(\d+)"[^>]*>([^<]+)<', page
        )
        held = source.holdings().folders
        on_source = sum(len(items) for name, items in held.items() if name != "Private")
        missing = on_source - target.holdings().messages
        assert int(badge.group(1)) == missing
        assert badge.group(2) == ("Verified" if not missing else f"{missing} missing")
    detail = client.get(first.get_absolute_url()).content.decode()
    assert 'id="verified-badge">Not verified<' in detail
    assert f'data-target-items="{target0.holdings().messages}"' in detail
    assert f'data-source-items="{source0.holdings().messages}"' in detail
    assert 'data-missing="3"' in detail and 'data-excluded="1"' in detail

    bulk = reverse("mailbox_bulk_action", args=[project.pk])
    answer = client.post(bulk, {"action": "missing", "scope": "selected", "selected": [first.pk]})
    assert answer.status_code == 302
    # The pass copies the three again; the worker verifies after it.
    wait_until(lambda: settled([first]), timeout=60, message=celery_worker_process.log)
    wanted = sorted(
        data
        for name, items in source0.holdings().folders.items()
        if name != "Private"
        for data, _ in items
    )
    assert target0.holdings().bodies() == wanted

    # "Verify" on demand, from the page.
    client.post(bulk, {"action": "verify", "scope": "filtered"})
    wait_until(lambda: settled(mailboxes), message=celery_worker_process.log)
    page = client.get(project.get_absolute_url()).content.decode()
    assert page.count(">Verified<") == 3

    report = client.get(reverse("project_report", args=[project.pk])).content.decode()
    rows = {row["source_address"]: row for row in csv.DictReader(io.StringIO(report))}
    for mailbox, source, target in users:
        row = rows[mailbox.source_address]
        assert row["target_items"] == str(target.holdings().messages)
        assert row["source_items"] == str(source.holdings().messages)
        assert row["items_excluded"] == str(len(source.holdings().folders["Private"]))
        assert (row["items_missing"], row["verified"]) == ("0", "yes")
        assert row["verified_at"]
