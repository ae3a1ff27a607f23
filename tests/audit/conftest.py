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


def project_form_data(**changes):
    """The project form as the page posts it: every field as shown, IMAP on both sides (pass
    ``members`` as the page shows them ticked)."""
    data = {
        "client_name": "Fabrikam",
        "state": "planning",
        "time_zone": "UTC",
        "domains": "fabrikam.example",
    }
    for side in ("source", "target"):
        data.update(
            {
                f"{side}-kind": "imap",
                f"{side}-endpoint": f"imap.{side}.example",
                f"{side}-port": "993",
                f"{side}-security": "tls",
                f"{side}-auth_method": "basic",
                f"{side}-username": f"admin@{side}.example",
                f"{side}-secret": f"{side}-Winter2026!",
                f"{side}-verify_tls": "on",
            }
        )
    data.update(changes)
    return data
