"""Three mailboxes, each with its own logins, in alice and bob's project."""

import pytest

from mailboxes.models import Mailbox


@pytest.fixture
def mailboxes(project):
    return [
        Mailbox.objects.create(
            project=project,
            source_address=f"{name}@contoso.example",
            target_address=f"{name}@contoso.onmicrosoft.example",
            display_name=name.title(),
            source_login=f"{name}-src",
            source_password=f"src-secret-{name}",
            target_login=f"{name}-dst",
            target_password=f"dst-secret-{name}",
        )
        for name in ("ann", "ben", "cleo")
    ]


def entries(project):
    """The project's log, oldest first: (actor_label, action, detail, remote_addr)."""
    rows = project.audit_entries.order_by("at", "pk")
    return list(rows.values_list("actor_label", "action", "detail", "remote_addr"))
