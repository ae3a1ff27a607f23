"""Every cutover and DNS URL: anonymous -> login, outsider -> 404 (GET and POST), member -> page."""

import pytest
from django.urls import reverse

from projects.cutover import ensure_checklist

pytestmark = pytest.mark.django_db

PAGES = ["cutover", "dns_propagation"]
ACTIONS = [
    ("cutover_state", {}),
    ("cutover_step_add", {}),
    ("cutover_reset", {}),
    ("dns_check_now", {}),
    ("dns_record_add", {}),
    ("dns_record_remove", {}),
    ("dns_sip", {}),
    ("dns_snapshot", {}),
    ("dns_nameservers", {}),
    ("cutover_tick", {"step": True}),
    ("cutover_step_edit", {"step": True}),
    ("cutover_step_move", {"step": True}),
    ("cutover_step_remove", {"step": True}),
    ("cutover_delta", {"step": True}),
    ("cutover_mailbox_tick", {"step": True, "mailbox": True}),
]


@pytest.fixture
def urls(project, mailbox):
    ensure_checklist(project)
    step = project.cutover_steps.get(key="freeze")
    out = {name: reverse(name, args=[project.pk]) for name in PAGES}
    for name, needs in ACTIONS:
        args = (
            [project.pk]
            + ([step.pk] if needs else [])
            + ([mailbox.pk] if "mailbox" in needs else [])
        )
        out[name] = reverse(name, args=args)
    return out


def test_anonymous_goes_to_login(client, urls):
    for name, url in urls.items():
        for method in (client.get, client.post):
            response = method(url)
            assert response.status_code == 302, name
            assert response["Location"].startswith(reverse("login")), name


def test_outsider_gets_404(client, charlie, urls, project):
    client.force_login(charlie)
    for name, url in urls.items():
        assert client.get(url).status_code == 404, name
        assert client.post(url, {"done": "1", "state": "cutover"}).status_code == 404, name
    project.refresh_from_db()
    assert project.state == "planning" and not project.cutover_steps.filter(done_at__isnull=False)


def test_member_gets_pages_and_actions_only_by_post(client, bob, urls):
    client.force_login(bob)
    for name, url in urls.items():
        expected = 200 if name in PAGES else 405
        assert client.get(url).status_code == expected, name


def test_staff_may_tick(client, django_user_model, urls, project):
    staff = django_user_model.objects.create_user("sam", password="x", is_staff=True)
    client.force_login(staff)
    assert client.post(urls["cutover_tick"], {"done": "1"}).status_code == 302
    assert project.cutover_steps.get(key="freeze").done_by == staff
