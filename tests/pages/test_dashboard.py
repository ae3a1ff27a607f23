import math
import re

import pytest
from django.db.models import Min
from django.urls import reverse
from django.utils import timezone

from mailboxes.models import Mailbox
from projects.models import CutoverStep, Project
from tests.conftest import make_project
from tests.rendered import table_rows

from .conftest import add_mailbox, add_samples

HOME = "/"


def rows(response):
    """The client names of the project rows the page shows, in their order."""
    html = response.content.decode()
    return re.findall(r'<tr id="project-\d+">\s*<th scope="row"><a href="[^"]*">([^<]*)</a>', html)


@pytest.mark.django_db
def test_shows_only_the_members_projects(client, bob, busy_project):
    make_project(client_name="Fabrikam")  # bob is no member
    client.force_login(bob)
    response = client.get(HOME)
    assert rows(response) == ["Contoso"]
    assert b"Fabrikam" not in response.content


@pytest.mark.django_db
def test_rolls_up_the_mailboxes(client, bob, busy_project):
    CutoverStep.objects.create(
        project=busy_project, title="Lower TTLs", done_at="2026-01-01T00:00Z"
    )
    CutoverStep.objects.create(project=busy_project, title="Move MX")
    client.force_login(bob)
    first_at = busy_project.progress_samples.aggregate(first=Min("at"))["first"]
    before = timezone.now()
    response = client.get(HOME)
    after = timezone.now()
    # What the row shows, then the figures behind it that the row rounds.
    [row] = table_rows(response, "projects")
    _, progress, mailboxes, throughput, eta, errors, _, checklist = row
    assert "Latest passes: 157 of 310 items done · 151.4 KB of 302.7 KB" in progress
    assert mailboxes == "1 / 1 / 0 / 0 / 1 of 4"  # done / running / queued / paused / failed
    assert (errors, checklist) == ("3", "1 / 2")  # two failed items and one failed mailbox
    # 30 items (30 kB) copied since the first sample, 153 items left. The rate is measured up
    # to the moment the page is made, somewhere between ``before`` and ``after``.
    since = [(moment - first_at).total_seconds() for moment in (before, after)]
    shown_rate = int(throughput.removesuffix(" bytes/s"))
    assert math.floor(30_000 / since[1]) <= shown_rate <= 30_000 / since[0], throughput
    minutes, seconds = map(int, re.fullmatch(r"(\d+) min (\d+) s", eta).groups())
    assert math.floor(153 * since[0] / 30) <= 60 * minutes + seconds <= 153 * since[1] / 30
    totals = response.context["projects"][0].totals
    assert (totals.items_total, totals.items_done) == (310, 157)
    assert (totals.bytes_total, totals.bytes_copied) == (310_000, 155_000)
    assert totals.percent == 50


@pytest.mark.django_db
def test_filters_and_sorts(client, bob):
    calm = make_project(members=[bob], client_name="Calm", state=Project.State.PRESTAGE)
    add_mailbox(calm, "a", Mailbox.State.DONE, copied=10, total=10)
    broken = make_project(members=[bob], client_name="Broken", state=Project.State.PRESTAGE)
    add_mailbox(broken, "b", Mailbox.State.COPYING, copied=1, total=10, failed=1)
    make_project(members=[bob], client_name="Later")
    client.force_login(bob)
    assert rows(client.get(HOME)) == ["Broken", "Calm", "Later"]
    assert rows(client.get(HOME, {"errors": "on"})) == ["Broken"]
    assert rows(client.get(HOME, {"state": "prestage", "sort": "progress"})) == ["Broken", "Calm"]
    assert rows(client.get(HOME, {"client": "cal"})) == ["Calm"]
    assert rows(client.get(HOME, {"sort": "errors"}))[0] == "Broken"


@pytest.mark.django_db
def test_query_count_does_not_grow_with_projects(client, bob, django_assert_max_num_queries):
    for n in range(12):
        project = make_project(members=[bob], client_name=f"Client {n}")
        for m in range(5):
            mailbox = add_mailbox(project, f"user{m}", Mailbox.State.COPYING, copied=1, total=9)
            add_samples(mailbox, count=2)
        CutoverStep.objects.create(project=project, title="Step")
    client.force_login(bob)
    # Two of them ask whether a worker answers and, none having, what waits for one.
    with django_assert_max_num_queries(8):
        response = client.get(HOME)
    assert len(rows(response)) == 12


@pytest.mark.django_db
def test_polls_while_running_and_stops_after(client, bob, busy_project):
    client.force_login(bob)
    page = client.get(HOME).content.decode()
    assert 'hx-trigger="every' in page and "<html" in page
    poll = client.get(HOME, headers={"HX-Request": "true"})
    body = poll.content.decode()
    assert poll.status_code == 200
    assert body.lstrip().startswith('<section id="projects"') and "<html" not in body
    busy_project.mailboxes.filter(state=Mailbox.State.COPYING).update(state=Mailbox.State.DONE)
    final = client.get(HOME, headers={"HX-Request": "true"})
    assert final.status_code == 286  # htmx stops polling
    assert "hx-trigger" not in final.content.decode()
    assert "hx-trigger" not in client.get(HOME).content.decode()


@pytest.mark.django_db
def test_links_to_each_project(client, bob, busy_project):
    client.force_login(bob)
    assert reverse("project_detail", args=[busy_project.pk]) in client.get(HOME).content.decode()
