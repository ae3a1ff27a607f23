"""The cutover checklist page: template steps, ticks recorded, editing, per-user steps, delta."""

import pytest
from django.urls import reverse

from mailboxes.models import MailboxPass
from projects.cutover import auto_tick, template_for
from projects.models import CutoverEvent, CutoverStep
from tests.servers.worker import purge_filesystem_broker, queued_tasks

pytestmark = pytest.mark.django_db


def page(project):
    return reverse("cutover", args=[project.pk])


def step_url(name, step, *extra):
    return reverse(name, args=[step.project_id, step.pk, *extra])


@pytest.fixture
def steps(client, bob, project):
    client.force_login(bob)
    client.get(page(project))
    return {s.key: s for s in project.cutover_steps.all()}


def test_page_starts_from_the_template_once(client, bob, project, mailbox):
    client.force_login(bob)
    response = client.get(page(project))
    assert response.status_code == 200
    client.get(page(project))
    keys = list(project.cutover_steps.values_list("key", flat=True))
    assert keys == [t.key for t in template_for(project)]
    body = response.content.decode()
    assert "Remove the domain from the source" in body
    # The seed's hard-won warnings sit on their steps.
    assert "relay errors" in body and "North American Central time" in body
    assert "Do this off-peak" in body
    # Per-user steps are shown per mailbox.
    assert "ann@contoso.onmicrosoft.example" in body


def test_tick_and_untick_are_recorded_with_who_when_and_note(client, bob, steps):
    freeze = steps["freeze"]
    response = client.post(step_url("cutover_tick", freeze), {"done": "1", "note": "mail sent"})
    assert response.status_code == 302
    freeze.refresh_from_db()
    assert freeze.is_done and freeze.done_by == bob and freeze.note == "mail sent"

    client.post(step_url("cutover_tick", freeze), {"done": "0", "note": "wrong day"})
    freeze.refresh_from_db()
    assert not freeze.is_done and freeze.done_by is None
    events = list(freeze.events.order_by("at", "id").values_list("action", "by__username", "note"))
    assert events == [("done", "bob", "mail sent"), ("undone", "bob", "wrong day")]
    history = client.get(page(freeze.project)).content.decode()
    assert "bob · un-ticked “Announce the freeze" in history and "wrong day" in history


def test_htmx_tick_returns_the_checklist_partial(client, steps):
    response = client.post(
        step_url("cutover_tick", steps["freeze"]), {"done": "1"}, HTTP_HX_REQUEST="true"
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith('<section id="checklist"') and "<html" not in body
    assert "✔ Announce the freeze" in body


def test_rename_and_owner(client, alice, charlie, steps):
    freeze = steps["freeze"]
    client.post(step_url("cutover_step_edit", freeze), {"title": "Freeze!", "owner": alice.pk})
    freeze.refresh_from_db()
    assert (freeze.title, freeze.owner) == ("Freeze!", alice)

    # charlie is not a member: refused, nothing changes.
    client.post(step_url("cutover_step_edit", freeze), {"title": "x", "owner": charlie.pk})
    freeze.refresh_from_db()
    assert (freeze.title, freeze.owner) == ("Freeze!", alice)


def test_reorder(client, project, steps):
    first, second = steps["lower-ttl"], steps["prestage"]
    client.post(step_url("cutover_step_move", second), {"direction": "up"})
    assert list(project.cutover_steps.values_list("key", flat=True)[:2]) == [
        "prestage",
        "lower-ttl",
    ]
    client.post(step_url("cutover_step_move", second), {"direction": "up"})  # already first
    client.post(step_url("cutover_step_move", first), {"direction": "down"})
    keys = list(project.cutover_steps.values_list("key", flat=True))
    assert keys[:3] == ["prestage", "freeze", "lower-ttl"]
    assert list(project.cutover_steps.values_list("position", flat=True)) == list(
        range(1, len(template_for(project)) + 1)
    )


def test_add_and_remove(client, project, steps):
    client.post(
        reverse("cutover_step_add", args=[project.pk]),
        {"title": "Call the old provider's support", "kind": "manual"},
    )
    added = project.cutover_steps.last()
    assert (added.title, added.kind, added.position) == (
        "Call the old provider's support",
        "manual",
        len(template_for(project)) + 1,
    )
    client.post(reverse("cutover_step_add", args=[project.pk]), {"title": "", "kind": "manual"})
    assert project.cutover_steps.count() == len(template_for(project)) + 1

    client.post(step_url("cutover_step_remove", steps["client-records"]))
    assert not project.cutover_steps.filter(key="client-records").exists()


def test_steps_of_another_project_are_404(client, steps, alice):
    from tests.conftest import make_project

    other = make_project(members=[alice], client_name="Fabrikam")
    theirs = CutoverStep.objects.create(project=other, title="theirs")
    url = reverse("cutover_tick", args=[steps["freeze"].project_id, theirs.pk])
    assert client.post(url, {"done": "1"}).status_code == 404
    theirs.refresh_from_db()
    assert not theirs.is_done


def test_per_user_steps_per_mailbox(client, bob, project, mailbox, steps):
    second = project.mailboxes.create(
        source_address="bo@contoso.example", target_address="bo@contoso.onmicrosoft.example"
    )
    profile = steps["readd-account"]
    client.post(step_url("cutover_mailbox_tick", profile, mailbox.pk), {"done": "1"})
    part = profile.mailbox_steps.get(mailbox=mailbox)
    assert part.done_at and part.done_by == bob
    assert auto_tick(project) == []  # bo still has to add his account again

    client.post(step_url("cutover_mailbox_tick", profile, second.pk), {"done": "1"})
    assert [s.key for s in auto_tick(project)] == ["readd-account"]
    event = profile.events.filter(mailbox=second).get()
    assert (event.action, event.by) == ("done", bob)

    client.post(step_url("cutover_mailbox_tick", profile, second.pk), {"done": "0"})
    assert not profile.mailbox_steps.get(mailbox=second).done_at
    assert profile.events.filter(mailbox=second, action="undone").exists()


def test_copy_step_ticks_when_every_latest_pass_is_done(project, mailbox, steps):
    second = project.mailboxes.create(
        source_address="bo@contoso.example", target_address="bo@contoso.onmicrosoft.example"
    )
    MailboxPass.objects.create(mailbox=mailbox, kind="prestage", state="done")
    MailboxPass.objects.create(mailbox=second, kind="prestage", state="done")
    # bo's latest pre-stage is still running: an older finished one does not count.
    running = MailboxPass.objects.create(mailbox=second, kind="prestage", state="running")
    assert "prestage" not in [s.key for s in auto_tick(project)]

    running.state = "done"
    running.save()
    assert [s.key for s in auto_tick(project)] == ["prestage"]
    step = project.cutover_steps.get(key="prestage")
    assert step.is_done and step.done_by is None
    assert step.events.get().note == "ticked itself: its checks passed"


def test_delta_button_queues_a_pass_per_mailbox(
    client, project, mailbox, steps, django_capture_on_commit_callbacks
):
    second = project.mailboxes.create(
        source_address="bo@contoso.example", target_address="bo@contoso.onmicrosoft.example"
    )
    delta = steps["delta"]
    purge_filesystem_broker()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(step_url("cutover_delta", delta), follow=True)
    assert "Delta pass queued for 2 mailbox(es)." in response.content.decode()
    passes = MailboxPass.objects.filter(kind="delta")
    assert {p.mailbox_id for p in passes} == {mailbox.pk, second.pk}
    # Once committed, each new pass's planning waits in the broker, nothing else.
    assert sorted(queued_tasks()) == sorted(
        ("mailboxes.tasks.plan_mailbox_pass", [p.pk], {}) for p in passes
    )
    delta.refresh_from_db()
    assert delta.passes_started_at is not None

    assert "delta" not in [s.key for s in auto_tick(project)]
    passes.update(state="done")
    ticked = [s.key for s in auto_tick(project)]
    # The final delta has not been started by its own button: only "delta" ticks.
    assert ticked == ["delta"]


def test_delta_only_from_delta_steps(client, steps):
    response = client.post(step_url("cutover_delta", steps["freeze"]), follow=True)
    assert "does not start passes" in response.content.decode()
    assert not MailboxPass.objects.exists()


def test_start_and_close_the_cutover(client, project, steps):
    client.post(reverse("cutover_state", args=[project.pk]), {"state": "cutover"})
    project.refresh_from_db()
    assert project.state == "cutover"
    body = client.get(page(project)).content.decode()
    assert 'hx-trigger="every 10s [!this.querySelector(' in body
    client.post(reverse("cutover_state", args=[project.pk]), {"state": "planning-ish"})
    project.refresh_from_db()
    assert project.state == "cutover"
    client.post(reverse("cutover_state", args=[project.pk]), {"state": "closed"})
    project.refresh_from_db()
    assert project.state == "closed"


def test_events_are_kept_when_a_person_unticks_an_automatic_step(project, bob, steps):
    step = steps["prestage"]
    step.tick(None, "ticked itself")
    step.untick(bob, "mailbox ann was missed")
    assert list(CutoverEvent.objects.filter(step=step).values_list("action", "by")) == [
        ("undone", bob.pk),
        ("done", None),
    ]


def test_delta_button_refused_by_the_identity_guard_starts_nothing(client, project, steps):
    for name in ("ann", "bo"):
        project.mailboxes.create(
            source_address=f"{name}@contoso.example",
            target_address=f"{name}@fabrikam.example",
            source_login="shared",
        )
    response = client.post(step_url("cutover_delta", steps["delta"]), follow=True)
    body = response.content.decode()
    assert response.status_code == 200
    assert "No delta pass was started: some mailboxes would share one account." in body
    assert "ann@contoso.example and bo@contoso.example would all log in to the source" in body
    assert not MailboxPass.objects.exists()
    steps["delta"].refresh_from_db()
    assert steps["delta"].passes_started_at is None


def test_checklists_made_before_get_their_steps_why(project):
    """Migration 0007: a step of the old template says why it matters; a step of the project's
    own, or one whose why someone wrote, is left as it is."""
    import importlib

    from django.apps import apps

    migration = importlib.import_module("projects.migrations.0007_cutoverstep_why_backfill")
    old = project.cutover_steps.create(key="old-client-off", title="Remove the old clients")
    own = project.cutover_steps.create(title="Call the client")
    written = project.cutover_steps.create(key="freeze", title="Freeze", why="Ours.")
    migration.fill_why(apps, None)
    for step in (old, own, written):
        step.refresh_from_db()
    assert old.why.startswith("Old sign-in and chat programs keep connecting")
    assert (own.why, written.why) == ("", "Ours.")
