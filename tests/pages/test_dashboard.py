import re

import pytest
from django.urls import reverse

from mailboxes.models import Mailbox
from projects.models import CutoverStep, Project
from tests.conftest import make_project

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
    response = client.get(HOME)
    # What the row shows, then the figures behind it (the rate and ETA to the second).
    row = response.content.decode().split(f'<tr id="project-{busy_project.pk}">')[1]
    row = row.split("</tr>")[0]
    assert "Latest passes: 157 of 310 items done" in row
    assert '<td class="num bad">3</td>' in row and '<td class="num">1 / 2</td>' in row
    project = response.context["projects"][0]
    totals = project.totals
    assert (totals.items_total, totals.items_done) == (310, 157)
    assert (totals.bytes_total, totals.bytes_copied) == (310_000, 155_000)
    assert (totals.mailboxes_done, totals.mailboxes_active, totals.mailboxes_failed) == (1, 1, 1)
    assert totals.errors == 3  # two failed items and one failed mailbox
    assert totals.percent == 50
    # 30 items (30 kB) in the last 40 s of samples; 153 items left at that rate.
    assert totals.rate.bytes_per_second == pytest.approx(750, rel=0.01)
    assert totals.eta.total_seconds() == pytest.approx(153 / 0.75, rel=0.01)
    assert (project.steps_done, project.steps_total) == (1, 2)


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
