import csv
import io

import pytest
from django.urls import reverse

from mailboxes.models import CopiedItem, ItemError, MailboxPass

pytestmark = pytest.mark.django_db


def report(client, project):
    response = client.get(reverse("project_report", args=[project.pk]))
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="contoso-report.csv"'
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def finished_pass(mailbox, kind, copied, nbytes, state="done"):
    return MailboxPass.objects.create(
        mailbox=mailbox, kind=kind, state=state, items_copied=copied, bytes_copied=nbytes
    )


class TestProjectReport:
    def test_totals_across_passes_and_reasons_of_what_never_arrived(self, client, bob, mailbox):
        project = mailbox.project
        other = project.mailboxes.create(
            source_address="ben@contoso.example", target_address="ben@new.example"
        )
        prestage = finished_pass(mailbox, "prestage", 40, 4000)
        finished_pass(mailbox, "delta", 3, 300)
        job = prestage.folder_jobs.create(mailbox=mailbox, source_path="INBOX")
        too_large = "[LIMIT] Mail size is larger than the maximum size allowed"
        for uid in ("7:1", "7:2"):
            ItemError.objects.create(folder_job=job, source_id=uid, reason=too_large)
        ItemError.objects.create(folder_job=job, source_id="7:3", reason="corrupt")
        # 7:3 failed in the pre-stage but a later pass copied it: no longer a failure.
        CopiedItem.objects.create(
            mailbox=mailbox, source_path="INBOX", source_id="7:3", fingerprint="f"
        )
        client.force_login(bob)

        ann, ben = report(client, project)

        assert (ann["source_address"], ann["passes"], ann["last_pass"]) == (
            "ann@contoso.example",
            "2",
            "delta (done)",
        )
        assert (ann["items_copied"], ann["bytes_copied"], ann["items_failed"]) == (
            "43",
            "4300",
            "2",
        )
        assert ann["failure_reasons"] == f"2 × {too_large}"
        assert (ben["source_address"], ben["passes"], ben["items_copied"]) == (
            other.source_address,
            "0",
            "0",
        )
        assert ben["failure_reasons"] == ""

    def test_query_count_does_not_grow_with_mailboxes(
        self, client, bob, project, django_assert_max_num_queries
    ):
        for n in range(30):
            box = project.mailboxes.create(
                source_address=f"u{n}@old.example", target_address=f"u{n}@new.example"
            )
            finished_pass(box, "full", n, n * 10)
        client.force_login(bob)
        # One of them writes the download to the audit log.
        with django_assert_max_num_queries(9):
            rows = report(client, project)
        assert len(rows) == 30

    def test_outsider_gets_404(self, client, charlie, project):
        client.force_login(charlie)
        assert client.get(reverse("project_report", args=[project.pk])).status_code == 404
