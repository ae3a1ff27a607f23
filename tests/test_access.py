"""Every URL pattern, walked as an anonymous user, an outsider and a member.

A new URL with an argument this test does not know fails here until it is added to ARGUMENTS,
so no view escapes the access rules unnoticed.
"""

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

# URLs anyone may open: log in and out, and the end-user page guarded by its signed token.
PUBLIC = {"login", "logout", "enduser_progress"}
# Views that only answer POST: a GET gets 405 from a member, after the access check.
POST_ONLY = {"logout", "mailbox_bulk_action", "mailbox_link_revoke", "project_discover"}
# The cutover checklist's and DNS pages' actions.
POST_ONLY |= {
    "cutover_state",
    "cutover_step_add",
    "cutover_reset",
    "cutover_tick",
    "cutover_step_edit",
    "cutover_step_move",
    "cutover_step_remove",
    "cutover_delta",
    "cutover_mailbox_tick",
    "dns_check_now",
    "dns_record_add",
    "dns_record_remove",
    "dns_sip",
    "dns_tenant_records",
    "dns_snapshot",
    "dns_nameservers",
}
# Notifications: sending and re-sending.
POST_ONLY |= {"notices_send", "notice_resend"}
# Schedules and run windows.
POST_ONLY |= {"schedule_add", "schedule_delete", "window_add", "window_delete"}

# The two-factor code page sends a user who has no device on to where they were going.
REDIRECTS = {"two_factor_verify"}


def walk(patterns, namespace=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            if pattern.namespace == "admin":
                continue  # Django's admin has its own staff-only rules, tested below.
            yield from walk(pattern.url_patterns, pattern.namespace or namespace)
        elif isinstance(pattern, URLPattern) and pattern.name:
            yield f"{namespace}:{pattern.name}" if namespace else pattern.name, pattern


def arguments(project, mailbox):
    from mailboxes import links

    values = {
        "project_id": project.pk,
        "mailbox_id": mailbox.pk,
        "side": "source",
        "token": links.make_token(mailbox),
        "kind": "copied",
    }
    for step in project.cutover_steps.all()[:1]:
        values["step_id"] = step.pk
    for domain in project.domains.all()[:1]:
        values["domain_id"] = domain.pk
    for notice in project.notices.all()[:1]:
        values["notice_id"] = notice.pk
    for schedule in project.schedules.all()[:1]:
        values["schedule_id"] = schedule.pk
    for window in project.run_windows.all()[:1]:
        values["window_id"] = window.pk
    return values


def url_for(name, pattern, values):
    needed = list(pattern.pattern.converters)
    unknown = [kwarg for kwarg in needed if kwarg not in values]
    assert not unknown, f"{name}: add a value for {unknown} to tests/test_access.py"
    return reverse(name, kwargs={k: values[k] for k in needed})


@pytest.fixture
def urls(project, mailbox):
    from projects.models import CutoverStep

    project.domains.create(name="contoso.example")
    CutoverStep.objects.create(project=project, title="Lower TTLs", position=1)
    project.notices.create(mailbox=mailbox, kind="copied", event_key="copied", recipient="a@b.c")
    project.schedules.create(kind="delta")
    project.run_windows.create(weekends=True)
    values = arguments(project, mailbox)
    return [
        (name, url_for(name, pattern, values))
        for name, pattern in walk(get_resolver().url_patterns)
    ]


@pytest.mark.django_db
def test_every_url_is_walked(urls):
    names = {name for name, _ in urls}
    assert {"home", "project_detail", "project_edit", "mailbox_import", "tenant_check"} <= names
    assert {"mailbox_add", "mailbox_edit", "mailbox_delete", "mailbox_login_checks"} <= names


@pytest.mark.django_db
def test_anonymous_is_sent_to_login(client, urls):
    for name, url in urls:
        if name in PUBLIC:
            continue
        response = client.get(url)
        assert response.status_code == 302, (name, url, response.status_code)
        assert response["Location"].startswith(reverse("login")), (name, url)


@pytest.mark.django_db
def test_outsider_gets_404(client, charlie, urls, project):
    client.force_login(charlie)
    for name, url in urls:
        if name in PUBLIC or str(project.pk) not in url.split("/"):
            continue
        assert client.get(url).status_code == 404, (name, url)
        assert client.post(url).status_code == 404, (name, url)


@pytest.mark.django_db
def test_member_gets_the_page(client, bob, urls):
    client.force_login(bob)
    for name, url in urls:
        expected = 405 if name in POST_ONLY else 302 if name in REDIRECTS else 200
        response = client.get(url)
        assert response.status_code == expected, (name, url, response.status_code)


@pytest.mark.django_db
def test_staff_see_every_project(client, django_user_model, urls, project):
    staff = django_user_model.objects.create_user("sam", password="x", is_staff=True)
    client.force_login(staff)
    assert client.get(reverse("project_detail", args=[project.pk])).status_code == 200


@pytest.mark.django_db
def test_admin_needs_staff(client, bob):
    client.force_login(bob)
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
