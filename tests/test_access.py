"""Every URL pattern, walked as an anonymous user, an outsider and a member of each role:
a viewer reads every page and changes nothing (every POST answers 403), an operator changes
everything but the team, the tenants and their credentials, an owner everything.

A new URL with an argument this test does not know fails here until it is added to ARGUMENTS,
so no view escapes the access rules unnoticed.
"""

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

# URLs anyone may open: log in and out, the end-user page guarded by its signed token, and the
# sign-up link of an invitation guarded by its own.
PUBLIC = {"login", "logout", "enduser_progress", "invitation_accept"}
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

# Team changes: members, their roles and invitations.
POST_ONLY |= {"member_role", "member_remove", "invitation_revoke"}

# The two-factor code page sends a user who has no device on to where they were going.
REDIRECTS = {"two_factor_verify"}
# A signed-in user who is not the invitee cannot use someone else's invitation.
SIGNED_IN = {"invitation_accept": 403}

# Owners only, whatever the method: the project form holds the tenants and their credentials.
OWNER_PAGES = {"project_edit"}
# Pages that are only a form to change something: not for viewers.
OPERATOR_PAGES = {"mailbox_add", "mailbox_edit", "mailbox_delete", "mailbox_import"}
# Owners only to POST (members read the page): the team, and the tenant connection test,
# which logs in with the tenant's credentials.
OWNER_POSTS = {"team", "member_role", "member_remove", "invitation_revoke", "tenant_check"}


def walk(patterns, namespace=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            if pattern.namespace == "admin":
                continue  # Django's admin has its own staff-only rules, tested below.
            yield from walk(pattern.url_patterns, pattern.namespace or namespace)
        elif isinstance(pattern, URLPattern) and pattern.name:
            yield f"{namespace}:{pattern.name}" if namespace else pattern.name, pattern


def arguments(project, mailbox, invite_token):
    from mailboxes import links

    values = {
        "project_id": project.pk,
        "mailbox_id": mailbox.pk,
        "side": "source",
        "token": links.make_token(mailbox),
        "kind": "copied",
        "invite_token": invite_token,
    }
    for membership in project.memberships.filter(role="viewer")[:1]:
        values["membership_id"] = membership.pk
    for invitation in project.invitations.all()[:1]:
        values["invitation_id"] = invitation.pk
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
def people(django_user_model, project, alice, charlie):
    """alice owns Contoso, olga operates it, vera views it, charlie is an outsider."""
    olga = django_user_model.objects.create_user("olga", "olga@example.org", "password-olga")
    vera = django_user_model.objects.create_user("vera", "vera@example.org", "password-vera")
    project.memberships.create(user=olga, role="operator")
    project.memberships.create(user=vera, role="viewer")
    return {"owner": alice, "operator": olga, "viewer": vera, "outsider": charlie}


@pytest.fixture
def urls(project, mailbox, people, alice):
    from projects.models import CutoverStep, Invitation

    _, invite_token = Invitation.send(project, "newcomer@example.org", "viewer", alice)
    project.domains.create(name="contoso.example")
    CutoverStep.objects.create(project=project, title="Lower TTLs", position=1)
    project.notices.create(mailbox=mailbox, kind="copied", event_key="copied", recipient="a@b.c")
    project.schedules.create(kind="delta")
    project.run_windows.create(weekends=True)
    values = arguments(project, mailbox, invite_token)
    return [
        (name, url_for(name, pattern, values))
        for name, pattern in walk(get_resolver().url_patterns)
    ]


@pytest.mark.django_db
def test_every_url_is_walked(urls):
    names = {name for name, _ in urls}
    assert {"home", "project_detail", "project_edit", "mailbox_import", "tenant_check"} <= names
    assert {"mailbox_add", "mailbox_edit", "mailbox_delete", "mailbox_login_checks"} <= names
    assert {"team", "member_role", "member_remove", "invitation_accept"} <= names


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


def expected_get(name, role):
    if name in OWNER_PAGES and role != "owner":
        return 403
    if name in OPERATOR_PAGES and role == "viewer":
        return 403
    if name in SIGNED_IN:
        return SIGNED_IN[name]
    return 405 if name in POST_ONLY else 302 if name in REDIRECTS else 200


def targets(html: str) -> tuple[set[str], set[str]]:
    """Where the page's forms POST (the page itself when they name no action), what its htmx
    attributes POST to, and where its links go."""
    posts = set()
    for form in re.findall(r"<form\b[^>]*>", html):
        if re.search(r"method=[\"']?post", form, re.I):
            action = re.search(r"action=[\"']([^\"']*)", form)
            posts.add(action.group(1) if action else "")
    posts |= set(re.findall(r"hx-post=[\"']([^\"']*)", html))
    return posts, set(re.findall(r"href=[\"']([^\"'?#]*)", html))


def offered(url, html, role, owner_urls) -> set[str]:
    """What the page offers that ``role`` may not do: any change to a viewer (logging out
    aside), an owner's change or a link to the project form to an operator."""
    posts, links = targets(html)
    posts = {url if action == "" else action for action in posts} - {reverse("logout")}
    if role == "viewer":
        # A control tied to a form elsewhere on the page (the bulk action's row checkboxes).
        return posts | {f"form={name}" for name in re.findall(r"\sform=[\"']([^\"']+)", html)}
    if role == "operator":
        return (posts & owner_urls) | (links & {reverse("project_edit", args=[url.split("/")[2]])})
    return set()


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["viewer", "operator", "owner"])
def test_every_member_reads_every_page(client, people, urls, role, project):
    client.force_login(people[role])
    owner_urls = {u for n, u in urls if n in OWNER_PAGES | OWNER_POSTS}
    problems = []
    for name, url in urls:
        response = client.get(url)
        assert response.status_code == expected_get(name, role), (name, url, response.status_code)
        page = response.status_code == 200 and "html" in response["Content-Type"]
        if page and (name, url) in project_urls(urls, project):
            extra = offered(url, response.content.decode(), role, owner_urls)
            problems += [(name, target) for target in sorted(extra)]
    assert problems == [], f"{role} is offered what it may not do: {problems}"


def project_urls(urls, project):
    return [(n, u) for n, u in urls if n not in PUBLIC and str(project.pk) in u.split("/")]


@pytest.mark.django_db
def test_a_viewer_changes_nothing(client, people, urls, project):
    from audit.models import AuditEntry

    client.force_login(people["viewer"])
    for name, url in project_urls(urls, project):
        response = client.post(url, {"action": "full", "scope": "filtered", "role": "owner"})
        assert response.status_code == 403, (name, url, response.status_code)
    assert not AuditEntry.objects.exists()
    assert project.memberships.get(user=people["viewer"]).role == "viewer"


@pytest.mark.django_db
def test_an_operator_changes_all_but_the_team_and_tenants(client, people, urls, project):
    client.force_login(people["operator"])
    owner_only = OWNER_PAGES | OWNER_POSTS
    for name, url in project_urls(urls, project):
        status = client.post(url).status_code
        assert (status == 403) == (name in owner_only), (name, url, status)
    assert project.memberships.get(user=people["viewer"]).role == "viewer"


@pytest.mark.django_db
def test_an_owner_changes_everything(client, people, urls, project):
    client.force_login(people["owner"])
    for name, url in project_urls(urls, project):
        # Some POSTs delete what later URLs name (a 404 then): only the role check counts.
        status = client.post(url).status_code
        assert status != 403, (name, url, status)


@pytest.mark.django_db
def test_staff_see_every_project(client, django_user_model, urls, project):
    staff = django_user_model.objects.create_user("sam", password="x", is_staff=True)
    client.force_login(staff)
    assert client.get(reverse("project_detail", args=[project.pk])).status_code == 200
    assert client.get(reverse("project_edit", args=[project.pk])).status_code == 200


@pytest.mark.django_db
def test_admin_needs_staff(client, bob):
    client.force_login(bob)
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
