"""Helpers for the verification tests: projects whose mailboxes log in with their own
passwords on both sides, and changes made behind mailferry's back with plain imaplib."""

import pytest

from mailboxes.models import Mailbox
from projects.models import Project, Tenant
from tests.commands.conftest import run, unique_messages  # noqa: F401 - re-exported

# The commands' progress line reads the passes from its own thread, hence its own connection.
pytestmark = pytest.mark.django_db(transaction=True)


def imap_tenant(server) -> Tenant:
    """A tenant with no account of its own: every mailbox logs in with its own password."""
    return Tenant.objects.create(
        kind="imap", endpoint=server.host, port=server.port, security="plain", verify_tls=False
    )


def imap_project(source_server, target_server) -> Project:
    return Project.objects.create(
        client_name="Northwind",
        source=imap_tenant(source_server),
        target=imap_tenant(target_server),
    )


def add_mailbox(project, source_user, target_user) -> Mailbox:
    return project.mailboxes.create(
        source_address=f"{source_user.name}@old.example",
        target_address=f"{target_user.name}@new.example",
        source_login=source_user.name,
        source_password=source_user.password,
        target_login=target_user.name,
        target_password=target_user.password,
    )


def expunge(user, folder: str, count: int) -> None:
    """Delete the first ``count`` messages of ``folder`` (STORE \\Deleted, then EXPUNGE)."""
    client = user.server.client(user.name, user.password)
    try:
        typ, _ = client.select(f'"{folder}"')
        assert typ == "OK"
        client.store(f"1:{count}", "+FLAGS", "(\\Deleted)")
        client.expunge()
    finally:
        client.logout()


def verify_lines(result) -> dict[str, str]:
    """The command's mailbox lines by address (folder lines left out)."""
    return {line.split()[0]: line for line in result.out.splitlines() if not line.startswith(" ")}
