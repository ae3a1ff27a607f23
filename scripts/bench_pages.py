"""Server time and query count of the consultant's pages on a big database.

Fills a throw-away database (a SQLite file in var/, or a ``test_`` database next to the one
DATABASE_URL names) with 50 projects, 10,000 mailboxes and 200,000 folder jobs, then prints one
line per page: ``PAGE median_ms=N queries=N kb=N``. Then one project on cutover day with 10,000
mailboxes of its own: its checklist page and the poll's partial. The query counts are also taken
on a tenth of the data first: they must not change with the size.

    make bench-pages            # or: .venv/bin/python scripts/bench_pages.py [--runs 30]
"""

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "migrator.settings")
os.environ.setdefault("STATIC_MANIFEST", "0")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.urls import reverse  # noqa: E402
from django.utils import timezone  # noqa: E402

from mailboxes.models import FolderJob, ItemError, Mailbox, MailboxPass, ProgressSample  # noqa: E402
from projects.cutover import ensure_checklist  # noqa: E402
from projects.models import CutoverStep, MailboxStep, Project, Tenant  # noqa: E402

PROJECTS = 50
MAILBOXES_PER_PROJECT = 200
FOLDERS_PER_MAILBOX = 20
STEPS_PER_PROJECT = 10
SAMPLES_PER_RUNNING_MAILBOX = 12
CUTOVER_MAILBOXES = 10_000
BATCH = 5000
# done, copying, failed, paused, not started: a migration in full swing.
STATE_CYCLE = ["done"] * 8 + ["copying"] * 4 + ["failed"] + ["paused"] + ["new"] * 6


def fill(user, projects: int) -> None:
    now = timezone.now()
    first = Project.objects.count()
    for p in range(first, first + projects):
        project = Project.objects.create(
            client_name=f"Client {p:03}",
            source=Tenant.objects.create(kind="imap", endpoint=f"imap.client{p}.example"),
            target=Tenant.objects.create(kind="maildir", endpoint=f"/srv/mail/{p}"),
            state=Project.State.PRESTAGE,
            planned_cutover=now + timedelta(days=p % 30),
        )
        project.members.add(user)
        CutoverStep.objects.bulk_create(
            CutoverStep(
                project=project, position=n, title=f"Step {n}", done_at=now if n < 3 else None
            )
            for n in range(STEPS_PER_PROJECT)
        )
        mailboxes = Mailbox.objects.bulk_create(
            _mailbox(project, n, STATE_CYCLE[n % len(STATE_CYCLE)], now)
            for n in range(MAILBOXES_PER_PROJECT)
        )
        passes = MailboxPass.objects.bulk_create(
            MailboxPass(mailbox=m, kind="prestage", state=_pass_state(m.state)) for m in mailboxes
        )
        jobs = FolderJob.objects.bulk_create(
            (
                FolderJob(
                    mailbox_pass=mailbox_pass,
                    mailbox=mailbox_pass.mailbox,
                    source_path=f"Folder {f:02}",
                    target_path=f"Folder {f:02}",
                    items_total=50,
                    items_copied=50 if mailbox_pass.state == "done" else 20,
                    bytes_total=5_000_000,
                    state="done" if mailbox_pass.state == "done" else "running",
                )
                for mailbox_pass in passes
                for f in range(FOLDERS_PER_MAILBOX)
            ),
            batch_size=BATCH,
        )
        ItemError.objects.bulk_create(
            ItemError(folder_job=job, source_id=f"uid:{job.pk}", reason="Rejected by the target")
            for job in jobs[:: FOLDERS_PER_MAILBOX * 7]
        )
        ProgressSample.objects.bulk_create(
            (
                ProgressSample(
                    mailbox=mailbox_pass.mailbox,
                    project=project,
                    mailbox_pass=mailbox_pass,
                    at=now - timedelta(seconds=30 * s),
                    items=40,
                    bytes=4_000_000,
                )
                for mailbox_pass in passes
                if mailbox_pass.mailbox.state == "copying"
                for s in range(SAMPLES_PER_RUNNING_MAILBOX)
            ),
            batch_size=BATCH,
        )


def _mailbox(project, n, state, now):
    total = 1000
    copied = {"done": 1000, "new": 0}.get(state, 400)
    return Mailbox(
        project=project,
        source_address=f"user{n:04}@client{project.pk}.example",
        target_address=f"user{n:04}@client{project.pk}.onmicrosoft.example",
        display_name=f"User {n}",
        state=state,
        items_total=total,
        items_copied=copied,
        items_failed=3 if state == "failed" else 0,
        bytes_total=total * 100_000,
        bytes_copied=copied * 100_000,
        items_on_target=copied,
        bytes_on_target=copied * 100_000,
        source_items=total,
        source_bytes=total * 100_000,
        source_listed_at=now if state != "new" else None,
        last_activity=now if copied else None,
        error="Login refused by the source" if state == "failed" else "",
    )


def _pass_state(mailbox_state):
    return {"new": "planning", "copying": "running"}.get(mailbox_state, mailbox_state)


def fill_cutover(user, mailboxes: int) -> Project:
    """The project on cutover day, grown to ``mailboxes``: its pre-stage done but for every
    fiftieth mailbox (so the step checks them all), every tenth mailbox's per-user steps done."""
    project = Project.objects.filter(client_name="Cutover day").first()
    if project is None:
        project = Project.objects.create(
            client_name="Cutover day",
            source=Tenant.objects.create(kind="imap", endpoint="imap.cutover.example"),
            target=Tenant.objects.create(kind="maildir", endpoint="/srv/mail/cutover"),
            state=Project.State.CUTOVER,
        )
        project.members.add(user)
        ensure_checklist(project)
    first = project.mailboxes.count()
    new = Mailbox.objects.bulk_create(
        (_mailbox(project, n, "done", timezone.now()) for n in range(first, mailboxes)),
        batch_size=BATCH,
    )
    MailboxPass.objects.bulk_create(
        (
            MailboxPass(mailbox=m, kind="prestage", state="running" if n % 50 == 0 else "done")
            for n, m in enumerate(new, start=first)
        ),
        batch_size=BATCH,
    )
    per_user = project.cutover_steps.filter(kind=CutoverStep.Kind.PER_USER)
    MailboxStep.objects.bulk_create(
        (
            MailboxStep(step=step, mailbox=m, done_at=timezone.now(), done_by=user)
            for step in per_user
            for n, m in enumerate(new, start=first)
            if n % 10 == 0
        ),
        batch_size=BATCH,
    )
    return project


def measure(client, url, runs, **headers):
    """Median milliseconds of ``runs`` requests after a warm-up, the queries and KB of one."""
    client.get(url, headers=headers)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        response = client.get(url, headers=headers)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code in (200, 286), (url, response.status_code)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, headers=headers)
    return statistics.median(times), len(queries), len(response.content) / 1024


def pages(project, mailbox):
    detail = reverse("project_detail", args=[project.pk])
    mailbox_url = reverse("mailbox_detail", args=[project.pk, mailbox.pk])
    htmx = {"HX-Request": "true"}
    return [
        ("dashboard", reverse("home"), {}),
        ("project_page", detail, {}),
        ("progress_partial", detail, htmx),
        ("mailbox_page", mailbox_url, {}),
        ("mailbox_partial", mailbox_url, htmx),
    ]


def run_all(client, runs):
    project = Project.objects.order_by("pk").first()
    mailbox = project.mailboxes.filter(state="copying").first()
    return {name: measure(client, url, runs, **h) for name, url, h in pages(project, mailbox)}


def run_cutover(client, project, runs):
    url = reverse("cutover", args=[project.pk])
    return {
        "cutover_page": measure(client, url, runs),
        "cutover_poll": measure(client, url, runs, **{"HX-Request": "true"}),
    }


def report(small, full) -> list[str]:
    """Prints ``full``; returns the pages whose query count grew from ``small``."""
    for name, (ms, queries, kb) in full.items():
        print(f"{name} median_ms={ms:.1f} queries={queries} kb={kb:.1f}", flush=True)
    return [name for name in full if full[name][1] != small[name][1]]


def analyze() -> None:
    """Fresh planner statistics on PostgreSQL, as autovacuum would give a real database."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()

    db = connection.settings_dict
    if connection.vendor == "sqlite":
        db["TEST"]["NAME"] = str(settings.VAR_DIR / "bench-pages.sqlite3")
    # No setup_test_environment(): its template instrumentation would add to every render.
    settings.ALLOWED_HOSTS = ["testserver"]
    real_name = db["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        user = get_user_model().objects.create_user("consultant", password="x")
        client = Client()
        client.force_login(user)
        fill(user, PROJECTS // 10)
        small = run_all(client, runs=2)
        print(
            f"# filling {PROJECTS} projects, {PROJECTS * MAILBOXES_PER_PROJECT} mailboxes, "
            f"{PROJECTS * MAILBOXES_PER_PROJECT * FOLDERS_PER_MAILBOX} folder jobs "
            f"on {connection.vendor}",
            flush=True,
        )
        fill(user, PROJECTS - PROJECTS // 10)
        analyze()
        grew = report(small, run_all(client, args.runs))
        # Cutover day, apart: its own 10,000 mailboxes would change the figures above.
        small = run_cutover(client, fill_cutover(user, CUTOVER_MAILBOXES // 10), runs=2)
        print(f"# cutover day: one project with {CUTOVER_MAILBOXES} mailboxes", flush=True)
        project = fill_cutover(user, CUTOVER_MAILBOXES)
        analyze()
        grew += report(small, run_cutover(client, project, args.runs))
        verdict = f"no: {', '.join(grew)}" if grew else "yes"
        print(f"# query counts independent of data size: {verdict}")
        return 1 if grew else 0
    finally:
        connection.creation.destroy_test_db(real_name, verbosity=0)


if __name__ == "__main__":
    sys.exit(main())
