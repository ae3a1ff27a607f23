"""The project page shows how much of Exchange Online's import budget the mailboxes being copied
use right now, read from the store every worker shares; the figure on the page is checked
against the store itself."""

import pytest

from mailboxes.budget import default_store
from mailboxes.connectors.graph import GraphConnector
from mailboxes.models import MailboxState
from projects.models import Project, Tenant
from tests.rendered import text

pytestmark = pytest.mark.django_db

OPTIONS = {"mailbox_requests": 10, "request_window": 600}
# (target mailbox, state, requests it has sent in the window)
MAILBOXES = [
    ("ann@new.example", MailboxState.COPYING, 3),
    ("bo@new.example", MailboxState.QUEUED, 9),
    ("cy@new.example", MailboxState.DONE, 10),  # not being copied: not counted
]


def graph_tenant(**options) -> Tenant:
    return Tenant.objects.create(
        kind="exchange_online",
        endpoint="https://graph.example/beta",
        auth_method="oauth2",
        secret="s3cret",
        oauth_tenant_id="tid-northwind",
        oauth_client_id="app-1",
        options=options,
    )


@pytest.fixture
def moving(alice):
    source = Tenant.objects.create(kind="imap", endpoint="imap.old.example", username="admin")
    project = Project.objects.create(
        client_name="Northwind", source=source, target=graph_tenant(**OPTIONS)
    )
    project.members.set([alice])
    for address, state, _ in MAILBOXES:
        project.mailboxes.create(
            source_address=address.replace("new", "old"), target_address=address, state=state
        )
    return project


def spend(project, address, requests):
    """Requests a worker's connector sent to the mailbox: its budget, as every worker sees it."""
    mailbox = project.mailboxes.get(target_address=address)
    budget = GraphConnector(mailbox.endpoint("target"), address).budgets()[0]
    for _ in range(requests):
        budget.store.release(budget.key, budget.acquire())
    return budget


class TestProjectDetailImportBudget:
    def test_the_page_shows_the_mean_use_of_the_mailboxes_being_copied(self, client, alice, moving):
        budgets = {address: spend(moving, address, n) for address, _, n in MAILBOXES}
        client.force_login(alice)

        page = text(client.get(moving.get_absolute_url()))

        store = default_store()
        copying = [budgets[address] for address, state, _ in MAILBOXES[:2]]
        used = [store.usage(b.key, b.limits).fraction_of(b.limits) for b in copying]
        assert used == [0.3, 0.9]  # the done mailbox's 10 of 10 are left out
        shown = round(100 * sum(used) / len(used))
        assert f"Exchange Online import budget: {shown} % used" in page
        assert shown == 60

    def test_nothing_being_copied_shows_no_figure(self, client, alice, moving):
        moving.mailboxes.update(state=MailboxState.DONE)
        client.force_login(alice)

        assert "import budget" not in text(client.get(moving.get_absolute_url()))

    def test_other_targets_show_no_figure(self, client, alice, moving):
        moving.target = Tenant.objects.create(kind="imap", endpoint="imap.new.example")
        moving.save()
        client.force_login(alice)

        assert "import budget" not in text(client.get(moving.get_absolute_url()))
