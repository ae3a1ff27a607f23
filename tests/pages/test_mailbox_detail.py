import re

import pytest
from django.urls import reverse

from mailboxes.models import ItemError, Mailbox

from .conftest import add_mailbox, add_pass, add_samples


@pytest.fixture
def rick(project):
    mailbox = add_mailbox(project, "rick", Mailbox.State.COPYING, copied=8, total=20, failed=1)
    old = add_pass(mailbox, folders=("INBOX",), state="done")
    current = add_pass(mailbox, folders=("INBOX", "Sent", "Projects/2026"))
    ItemError.objects.create(
        folder_job=current.folder_jobs.get(source_path="Sent"),
        source_id="uid:42",
        size=80_000_000,
        code="TooLarge",
        reason="Message exceeds the target's 35 MB limit",
    )
    add_samples(mailbox)
    mailbox.old_pass = old
    return mailbox


def url(mailbox):
    return reverse("mailbox_detail", args=[mailbox.project_id, mailbox.pk])


def shown_link(client, mailbox, **params) -> str:
    """The end-user link the mailbox page shows in its link field; "" when it shows none."""
    html = client.get(url(mailbox), params).content.decode()
    found = re.search(r'id="enduser-link" readonly value="([^"]*)"', html)
    return found.group(1) if found else ""


@pytest.mark.django_db
def test_folders_errors_and_pass_history(client, bob, rick, django_assert_max_num_queries):
    client.force_login(bob)
    with django_assert_max_num_queries(15):  # the tenants: who logs in; altered copies
        response = client.get(url(rick))
    html = response.content.decode()
    folders = html.split('aria-labelledby="passes-heading"')[0]
    assert re.findall(r'<tr>\s*<th scope="row">([^<]*)</th>', folders) == [
        "INBOX",
        "Projects/2026",
        "Sent",
    ]
    assert html.count("4 / 10") == 3  # each folder job's counts
    assert "Message exceeds the target&#x27;s 35 MB limit" in html and "TooLarge" in html
    history = html.split('aria-labelledby="passes-heading"')[1].split("</table>")[0]
    assert history.count('<tr><th scope="row">') == 2
    assert "<svg" in html


@pytest.mark.django_db
def test_per_user_steps_show_this_mailboxs_part(client, alice, bob, rick):
    from projects.models import CutoverStep

    step = CutoverStep.objects.create(
        project=rick.project, title="Remove the old client", kind=CutoverStep.Kind.PER_USER
    )
    step.set_mailbox_done(rick, alice, True)
    client.force_login(bob)
    html = client.get(url(rick)).content.decode()
    steps = re.findall(r'<ol class="user-steps">(.*?)</ol>', html, re.S)
    assert steps and re.findall(r"<li[^>]*>(.*?) <span", steps[0]) == ["Remove the old client"]
    assert '<li class="ok">Remove the old client <span class="small">(done)</span>' in steps[0]


@pytest.mark.django_db
def test_partial_is_the_progress_region_and_slows_down_when_done(
    client, bob, rick, django_assert_max_num_queries
):
    client.force_login(bob)
    with django_assert_max_num_queries(8):
        poll = client.get(url(rick), headers={"HX-Request": "true"})
    body = poll.content.decode()
    assert poll.status_code == 200 and body.lstrip().startswith('<section id="progress"')
    assert 'hx-trigger="every 2s"' in body and "Pass history" not in body
    Mailbox.objects.filter(pk=rick.pk).update(state=Mailbox.State.DONE)
    done = client.get(url(rick), headers={"HX-Request": "true"})
    # Idle, the page keeps asking slowly, so that a pass started elsewhere shows up.
    assert done.status_code == 200 and 'hx-trigger="every 20s"' in done.content.decode()


@pytest.mark.django_db
def test_another_projects_mailbox_is_not_found_through_this_project(client, bob, rick):
    from tests.conftest import make_project

    elsewhere = make_project(members=[bob], client_name="Fabrikam")
    client.force_login(bob)
    assert client.get(reverse("mailbox_detail", args=[elsewhere.pk, rick.pk])).status_code == 404


@pytest.mark.django_db
def test_end_user_link_with_expiry_and_revocation(client, bob, rick):
    client.force_login(bob)
    link = shown_link(client, rick)
    assert link.startswith("http://testserver/progress/")
    assert client.get(link).status_code == 200
    expiring = shown_link(client, rick, link_days="7")
    assert expiring not in ("", link)
    assert shown_link(client, rick, link_days="0") == ""
    response = client.post(reverse("mailbox_link_revoke", args=[rick.project_id, rick.pk]))
    assert response.status_code == 302
    assert client.get(link).status_code == 410
    assert client.get(expiring).status_code == 410
    assert client.get(shown_link(client, rick)).status_code == 200


@pytest.mark.django_db
def test_an_idle_page_notices_a_pass_started_elsewhere(
    client, bob, project, django_capture_on_commit_callbacks
):
    from mailboxes import services

    idle = add_mailbox(project, "ivy", Mailbox.State.DONE, copied=3, total=3)
    client.force_login(bob)
    page = client.get(url(idle)).content.decode()
    assert 'hx-trigger="every 20s"' in page  # slow while nothing runs
    with django_capture_on_commit_callbacks():
        services.start_passes(project.mailboxes.filter(pk=idle.pk), "delta")
    poll = client.get(url(idle), headers={"HX-Request": "true"})
    body = poll.content.decode()
    assert poll.status_code == 200 and 'hx-trigger="every 2s"' in body and "Queued" in body
