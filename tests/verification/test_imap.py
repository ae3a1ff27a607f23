"""Verification against two real Dovecot servers, three mailboxes each with its own login and
its own mail: after a full pass everything is verified; then items deleted on a target, items
added to a source and a copy into the wrong account each make ``verify`` exit 1 and name the
folder and counts; "Copy what is missing" puts exactly the source's mail back, and ``verify``
exits 0. Every figure is compared with what the servers hold, counted with imaplib."""

import pytest

from mailboxes.models import CopiedItem, FolderMapping, Mailbox, MailboxPass, PassKind

from .conftest import add_mailbox, expunge, imap_project, run, unique_messages, verify_lines

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def three(dovecot_a, dovecot_b, dovecot_user):
    """Three mailboxes with their own content, a folder left out by an override."""
    project = imap_project(dovecot_a, dovecot_b)
    FolderMapping.objects.create(project=project, source_path="Private", exclude=True)
    pairs = []
    for i in range(3):
        source, target = dovecot_user(dovecot_a), dovecot_user(dovecot_b)
        source.load("INBOX", unique_messages(f"user{i}", 5 + i))
        source.load("Archive/2019", unique_messages(f"user{i}-old", 3 + i))
        source.load("Private", unique_messages(f"user{i}-private", 2))
        pairs.append((add_mailbox(project, source, target), source, target))
    return project, pairs


def test_a_full_pass_is_verified_and_each_difference_is_named_then_copied(three, dovecot_b):
    project, pairs = three
    (deleted, s0, t0), (grown, s1, t1), (wrong, s2, t2) = pairs
    # The third mailbox's first copy lands in another user's account (a wrong target login).
    stray = wrong.target_login, wrong.target_password
    other_login, other_password = dovecot_b.add_user()
    Mailbox.objects.filter(pk=wrong.pk).update(target_login=other_login)
    wrong.target_password = other_password
    wrong.save(update_fields=["target_password"])

    full = run("run_pass", project.pk, "--kind", "full", "--wait", "--inline")
    assert full.code == 0, full.out + full.message

    Mailbox.objects.filter(pk=wrong.pk).update(target_login=stray[0])
    wrong.refresh_from_db()
    wrong.target_password = stray[1]
    wrong.save(update_fields=["target_password"])
    assert t2.holdings().messages == 0  # nothing reached the right account

    expunge(t0, "INBOX", 2)
    s1.load("INBOX", unique_messages("user1-late", 3))

    checked = run("verify", project.pk, "--inline")

    assert checked.code == 1, checked.out + checked.message
    lines = verify_lines(checked)
    assert lines[deleted.source_address] == (
        f"{deleted.source_address} verified=no missing=2 failed=0 excluded=2 extra=0"
    )
    assert lines[grown.source_address] == (
        f"{grown.source_address} verified=no missing=3 failed=0 excluded=2 extra=0"
    )
    assert lines[wrong.source_address] == (
        f"{wrong.source_address} verified=no missing=12 failed=0 excluded=2 extra=0"
    )
    assert "  folder INBOX: missing=2 (2 gone from the target) excluded=0" not in checked.out
    assert "  folder INBOX: missing=2 (2 gone from the target)\n" in checked.out
    assert "  folder INBOX: missing=3 (3 new on the source)\n" in checked.out
    assert "  folder INBOX: missing=7 (7 gone from the target)\n" in checked.out
    assert (
        "  folder Archive/2019: missing=5 (5 gone from the target) "
        "the target has no folder Archive/2019\n"
    ) in checked.out
    assert checked.out.count("  folder Private: excluded=2\n") == 3
    for mailbox, source, target in pairs:
        mailbox.refresh_from_db()
        totals = mailbox.verification["totals"]
        held = target.holdings().messages
        assert totals["target_items"] == held
        assert totals["source_items"] == source.holdings().messages
        assert mailbox.items_missing == {deleted.pk: 2, grown.pk: 3, wrong.pk: 12}[mailbox.pk]
        assert mailbox.verified is False

    fixed = run("run_pass", project.pk, "--kind", "missing", "--wait", "--inline")

    assert fixed.code == 0, fixed.out + fixed.message
    assert f"{deleted.source_address} state=done copied=2 failed=0" in fixed.out
    assert f"{grown.source_address} state=done copied=3 failed=0" in fixed.out
    assert f"{wrong.source_address} state=done copied=12 failed=0" in fixed.out
    assert MailboxPass.objects.filter(kind=PassKind.MISSING).count() == 3
    again = run("verify", project.pk, "--inline")
    assert again.code == 0, again.out + again.message
    for mailbox, source, target in pairs:
        line = f"{mailbox.source_address} verified=yes missing=0 failed=0 excluded=2 extra=0"
        assert line in again.out
        # The target holds exactly the source's mail, the excluded folder left out.
        wanted = sorted(
            data
            for folder, items in source.holdings().folders.items()
            if folder != "Private"
            for data, _ in items
        )
        assert target.holdings().bodies() == wanted
        mailbox.refresh_from_db()
        assert mailbox.items_on_target == len(wanted)
        assert CopiedItem.objects.filter(mailbox=mailbox).count() == len(wanted)


def test_messages_another_tool_put_on_a_target_are_extra_and_deep_sees_changed_content(
    three, dovecot_a
):
    project, pairs = three
    assert run("run_pass", project.pk, "--kind", "full", "--wait", "--inline").code == 0
    (first, s0, t0), (second, s1, t1), _ = pairs
    # Another user's messages land on the first target: informational, still verified.
    t0.load("INBOX", unique_messages("not-yours", 4))

    checked = run("verify", project.pk, "--mailbox", first.source_address, "--inline")

    assert checked.code == 0, checked.out + checked.message
    assert checked.out.splitlines()[0] == (
        f"{first.source_address} verified=yes missing=0 failed=0 excluded=2 extra=4"
    )
    assert "  folder INBOX: extra=4\n" in checked.out
    first.refresh_from_db()
    assert first.verification["totals"]["target_items"] == t0.holdings().messages == 4 + 5 + 3

    # A copy replaced by other content under a new id is gone; deep compares fingerprints.
    deep = run("verify", project.pk, "--mailbox", second.source_address, "--deep", "--inline")
    assert deep.code == 0, deep.out + deep.message
    second.refresh_from_db()
    assert second.verification["deep"] is True
    assert second.verification["totals"]["copied"] == 6 + 4
    row = CopiedItem.objects.filter(mailbox=second, source_path="INBOX").first()
    CopiedItem.objects.filter(pk=row.pk).update(fingerprint="0" * 64)
    deep = run("verify", project.pk, "--mailbox", second.source_address, "--deep", "--json")
    assert deep.code == 1
    assert '"changed": 1' in deep.out
    cheap = run("verify", project.pk, "--mailbox", second.source_address, "--inline")
    assert cheap.code == 0, cheap.out


def test_a_verification_that_cannot_log_in_ends_with_the_reason_never_queued(three):
    project, pairs = three
    mailbox = pairs[0][0]
    mailbox.target_password = "not-the-password"
    mailbox.save(update_fields=["target_password"])

    checked = run("verify", project.pk, "--mailbox", mailbox.source_address, "--inline")

    assert checked.code == 1
    lines = checked.out.splitlines()
    assert lines[0] == f"{mailbox.source_address} verified=no missing=0 failed=0 excluded=0 extra=0"
    assert lines[1].startswith("  error: The target server refused the credentials")
    mailbox.refresh_from_db()
    assert (mailbox.verified, mailbox.verify_requested_at) == (False, None)
    assert mailbox.verified_at is not None
