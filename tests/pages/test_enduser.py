from datetime import timedelta

import pytest
from django.core import signing
from django.urls import reverse
from django.utils import timezone

from mailboxes import links
from mailboxes.models import Mailbox

from .conftest import add_mailbox


@pytest.fixture
def ann(project):
    return add_mailbox(project, "ann", Mailbox.State.COPYING, copied=30, total=120)


@pytest.fixture
def ben(project):
    return add_mailbox(project, "ben", Mailbox.State.DONE, copied=5, total=5)


@pytest.mark.django_db
def test_shows_that_mailbox_only_without_login(client, ann, ben, django_assert_max_num_queries):
    with django_assert_max_num_queries(3):
        response = client.get(links.enduser_url(ann))
    html = response.content.decode()
    assert response.status_code == 200
    assert "ann@contoso.example" in html and 'value="25"' in html and "30 of the 120 items" in html
    assert "ben@" not in html and "Contoso" not in html  # nothing of anyone else
    assert response["X-Robots-Tag"].startswith("noindex")
    assert response["Referrer-Policy"] == "no-referrer"


@pytest.mark.django_db
def test_live_while_copying_then_stops(client, ann):
    url = links.enduser_url(ann)
    poll = client.get(url, headers={"HX-Request": "true"})
    assert poll.status_code == 200 and 'hx-trigger="every 5s"' in poll.content.decode()
    Mailbox.objects.filter(pk=ann.pk).update(state=Mailbox.State.DONE, items_copied=120)
    done = client.get(url, headers={"HX-Request": "true"})
    assert done.status_code == 286 and "has been copied" in done.content.decode()


@pytest.mark.django_db
def test_tampered_token_is_not_found(client, ann, ben):
    token = links.make_token(ann)
    forged = signing.dumps({"m": ben.pk, "v": 1}, salt="another-salt", compress=True)
    for bad in (token[:-2] + ("AA" if not token.endswith("AA") else "BB"), forged, "nonsense"):
        assert client.get(reverse("enduser_progress", args=[bad])).status_code == 404


@pytest.mark.django_db
def test_deleted_mailbox_is_not_found(client, ann):
    url = links.enduser_url(ann)
    ann.delete()
    assert client.get(url).status_code == 404


@pytest.mark.django_db
def test_revoked_and_expired_links_are_gone(client, ann):
    revoked = links.enduser_url(ann)
    expired = links.enduser_url(ann, expires_at=timezone.now() - timedelta(seconds=1))
    valid = links.enduser_url(ann, expires_at=timezone.now() + timedelta(days=1))
    assert client.get(expired).status_code == 410
    assert client.get(valid).status_code == 200
    links.revoke_links(ann)
    for url in (revoked, valid):
        response = client.get(url)
        assert response.status_code == 410 and "no longer valid" in response.content.decode()
    assert client.get(links.enduser_url(ann)).status_code == 200


@pytest.mark.django_db
def test_their_own_client_steps(client, alice, ann, ben):
    from projects.models import CutoverStep

    profile = CutoverStep.objects.create(
        project=ann.project, title="Create a new Outlook profile", kind=CutoverStep.Kind.PER_USER
    )
    CutoverStep.objects.create(project=ann.project, title="Lower the TTLs")  # not per user
    profile.set_mailbox_done(ben, alice, True)
    html = client.get(links.enduser_url(ann)).content.decode()
    assert 'Create a new Outlook profile <span class="small">(to do)' in html
    assert "Lower the TTLs" not in html
    profile.set_mailbox_done(ann, alice, True)
    html = client.get(links.enduser_url(ann)).content.decode()
    assert 'Create a new Outlook profile <span class="small">(done)' in html
