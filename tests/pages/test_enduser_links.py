"""A link that does not work gets one friendly page, whatever the reason: tampered, cut short,
its mailbox deleted, revoked or expired."""

from datetime import timedelta

import pytest
from django.core import signing
from django.urls import reverse
from django.utils import timezone

from mailboxes import links

from .conftest import add_mailbox

FRIENDLY = "This link is no longer valid"


def gone_page(response) -> str:
    """The page's main part, checked to be the friendly page with nothing of any mailbox."""
    main = response.content.decode().split("<main", 1)[1]
    assert FRIENDLY in main and "Ask your IT team for a new link." in main
    assert "@" not in main  # no address of anyone
    return main


@pytest.mark.django_db
class TestBrokenLinks:
    @pytest.fixture
    def ann(self, project):
        return add_mailbox(project, "ann")

    def test_tampered_and_revoked_links_show_the_same_page(self, client, ann, project):
        token = links.make_token(ann)
        forged = signing.dumps({"m": ann.pk, "v": 1}, salt="another-salt", compress=True)
        flipped = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
        tampered = [flipped, token[:-10], forged, "nonsense"]
        revoked = links.enduser_url(ann)
        links.revoke_links(ann)
        revoked_page = client.get(revoked)
        assert revoked_page.status_code == 410
        expected = gone_page(revoked_page)
        for bad in tampered:
            response = client.get(reverse("enduser_progress", args=[bad]))
            assert response.status_code == 404  # still a 4xx, and no hint which part was wrong
            assert gone_page(response) == expected

    def test_a_deleted_mailboxs_link_shows_it_too(self, client, ann):
        url = links.enduser_url(ann)
        ann.delete()
        response = client.get(url)
        assert response.status_code == 404 and gone_page(response)

    def test_expired_link(self, client, ann):
        url = links.enduser_url(ann, expires_at=timezone.now() - timedelta(seconds=1))
        response = client.get(url)
        assert response.status_code == 410 and gone_page(response)

    def test_polling_a_broken_link_swaps_the_page_in_and_stops(self, client, ann):
        response = client.get(
            reverse("enduser_progress", args=["nonsense"]), headers={"HX-Request": "true"}
        )
        # htmx swaps a 286 in and polls no more (it would not swap a 404, and poll on).
        assert response.status_code == 286 and FRIENDLY in response.content.decode()
