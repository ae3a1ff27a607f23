"""Each project edits its own checklist: add (with why it matters), add back a template step,
rename, reorder, remove (a per-user step's mailbox parts go with it), reset to the template.
Each change is checked in the database and on the page; bad input is a message, never a 500."""

import html
import re

import pytest
from django.urls import reverse

from projects.cutover import template_for
from projects.models import CutoverEvent, CutoverStep, MailboxStep
from tests.conftest import make_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def steps(client, bob, project):
    client.force_login(bob)
    client.get(reverse("cutover", args=[project.pk]))
    return {s.key: s for s in project.cutover_steps.all()}


def post(client, name, project, *args, htmx=False, **data):
    headers = {"HX-Request": "true"} if htmx else {}
    return client.post(
        reverse(name, args=[project.pk, *args]), data, headers=headers, follow=not htmx
    )


def titles(project) -> list[str]:
    return list(project.cutover_steps.values_list("title", flat=True))


def shown_titles(response) -> list[str]:
    assert response.status_code == 200
    body = response.content.decode()
    found = re.findall(r'<strong class="step-title">(?:✔ )?(.*?)</strong>', body)
    return [html.unescape(title) for title in found]


def test_add_a_step_of_the_projects_own(client, project, steps):
    response = post(
        client,
        "cutover_step_add",
        project,
        title="Call the old provider's support",
        kind="manual",
        why="Only they can release the domain if it sticks.",
    )
    added = project.cutover_steps.last()
    assert (added.title, added.kind, added.why, added.position, added.key) == (
        "Call the old provider's support",
        "manual",
        "Only they can release the domain if it sticks.",
        len(steps) + 1,
        "",
    )
    assert shown_titles(response)[-1] == "Call the old provider's support"
    assert "Why it matters: Only they can release the domain if it sticks." in (
        response.content.decode()
    )


@pytest.mark.parametrize("htmx", [False, True])
def test_a_step_without_a_title_is_a_message(client, project, steps, htmx):
    before = titles(project)
    response = post(client, "cutover_step_add", project, htmx=htmx, title="  ", kind="manual")
    assert response.status_code == 200
    assert "A new step needs a title" in response.content.decode()
    assert titles(project) == before
    response = post(client, "cutover_step_add", project, htmx=htmx, title="x", kind="dns")
    assert response.status_code == 200 and titles(project) == before


def test_rename_with_why(client, project, steps):
    freeze = steps["freeze"]
    response = post(
        client,
        "cutover_step_edit",
        project,
        freeze.pk,
        htmx=True,
        title="Freeze announced by the client",
        why="Their staff read the client's mail, not ours.",
    )
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="checklist"')
    assert "Freeze announced by the client" in shown_titles(response)
    assert "Why it matters: Their staff read the client&#x27;s mail, not ours." in body
    freeze.refresh_from_db()
    assert (freeze.title, freeze.why) == (
        "Freeze announced by the client",
        "Their staff read the client's mail, not ours.",
    )
    response = post(client, "cutover_step_edit", project, freeze.pk, title="")
    assert "A step needs a title" in response.content.decode()
    freeze.refresh_from_db()
    assert freeze.title == "Freeze announced by the client"


def test_reorder_shows_on_the_page(client, project, steps):
    first, second = titles(project)[:2]
    response = post(client, "cutover_step_move", project, steps["prestage"].pk, direction="up")
    assert titles(project)[:2] == [second, first]
    assert shown_titles(response)[:2] == [second, first]
    response = post(client, "cutover_step_move", project, steps["close"].pk, direction="down")
    assert titles(project)[-1] == steps["close"].title  # the last stays last
    positions = list(project.cutover_steps.values_list("position", flat=True))
    assert positions == list(range(1, len(steps) + 1))


def test_removing_a_per_user_step_removes_its_mailbox_parts(client, bob, project, mailbox, steps):
    readd = steps["readd-account"]
    readd.set_mailbox_done(mailbox, bob, True)
    assert MailboxStep.objects.filter(step=readd).count() == 1
    response = post(client, "cutover_step_remove", project, readd.pk)
    assert readd.title not in shown_titles(response)
    assert not CutoverStep.objects.filter(pk=readd.pk).exists()
    assert not MailboxStep.objects.filter(step_id=readd.pk).exists()
    assert not CutoverEvent.objects.filter(step_id=readd.pk).exists()
    # No per-user step left: the drill-down is gone too.
    assert "Per user" not in response.content.decode()


def test_a_removed_template_step_can_be_added_back_in_its_place(client, project, steps):
    expected = titles(project)
    post(client, "cutover_step_remove", project, steps["client-records"].pk)
    assert steps["client-records"].title not in titles(project)
    response = post(client, "cutover_step_add", project, key="client-records")
    assert titles(project) == expected
    assert shown_titles(response) == expected
    added = project.cutover_steps.get(key="client-records")
    assert added.dns_groups == ["clients"] and added.why

    # Not missing any more, or not in this route's template: a message, nothing added.
    for key in ("client-records", "target-records", "nonsense"):
        response = post(client, "cutover_step_add", project, key=key)
        assert "That step is not one the checklist is missing." in response.content.decode()
    assert titles(project) == expected


def test_reset_needs_a_confirmation(client, bob, project, mailbox, steps):
    post(client, "cutover_step_add", project, title="Our own step", kind="manual")
    steps["freeze"].tick(bob)
    response = post(client, "cutover_reset", project)
    assert "Nothing was reset: tick the confirmation first." in response.content.decode()
    assert "Our own step" in titles(project)
    assert project.cutover_steps.get(key="freeze").is_done


def test_reset_drops_every_step_and_tick_for_the_routes_template(
    client, bob, project, steps, caplog
):
    mailbox = project.mailboxes.create(source_address="a@c.test", target_address="a@c.test")
    post(client, "cutover_step_add", project, title="Our own step", kind="manual")
    steps["freeze"].tick(bob)
    steps["readd-account"].set_mailbox_done(mailbox, bob, True)
    # The route changed since the list was made: the reset follows the route as it is now.
    project.target.kind = "exchange_online"
    project.target.save()

    with caplog.at_level("INFO", logger="projects.views.cutover"):
        response = post(client, "cutover_reset", project, confirm="on")
    assert f"Checklist of project {project.pk} reset to its template by bob" in caplog.text
    body = response.content.decode()
    expected = [t.title for t in template_for(project)]
    assert titles(project) == expected and shown_titles(response) == expected
    assert "Set MX, autodiscover, SPF, DKIM and DMARC records" in expected
    assert "The checklist starts again from the template for migrations to Microsoft 365" in body
    assert f"{len(steps) + 1} step(s) and their ticks were dropped." in body
    assert not project.cutover_steps.filter(done_at__isnull=False).exists()
    assert not MailboxStep.objects.filter(step__project=project).exists()
    assert "Nothing ticked yet." in body


def test_steps_of_another_project_are_404_for_every_edit(client, project, steps, alice):
    other = make_project(members=[alice], client_name="Fabrikam")
    theirs = CutoverStep.objects.create(project=other, title="theirs", position=1)
    for name, data in (
        ("cutover_step_edit", {"title": "mine now"}),
        ("cutover_step_move", {"direction": "up"}),
        ("cutover_step_remove", {}),
    ):
        response = client.post(reverse(name, args=[project.pk, theirs.pk]), data)
        assert response.status_code == 404, name
    assert CutoverStep.objects.get(pk=theirs.pk).title == "theirs"


def test_an_outsider_cannot_edit(client, charlie, project, steps):
    before = titles(project)
    client.force_login(charlie)
    for name, args, data in (
        ("cutover_step_add", [], {"title": "x", "kind": "manual"}),
        ("cutover_step_add", [], {"key": "client-records"}),
        ("cutover_reset", [], {"confirm": "on"}),
        ("cutover_step_edit", [steps["freeze"].pk], {"title": "x"}),
        ("cutover_step_move", [steps["freeze"].pk], {"direction": "up"}),
        ("cutover_step_remove", [steps["freeze"].pk], {}),
    ):
        response = client.post(reverse(name, args=[project.pk, *args]), data)
        assert response.status_code == 404, name
    assert titles(project) == before
