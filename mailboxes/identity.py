"""The identity guard: no two mailboxes may read one source account or write one target account.

Two mailboxes resolving to one account is how one user's mail lands in another's mailbox (or
one account is copied three times while two targets stay empty); it is refused before any copy
and on import, with a message naming the mailboxes.
"""

from dataclasses import dataclass

from projects.models import Project

from .connectors.base import APP_KINDS
from .models import SIDES, Mailbox


class IdentityRefused(Exception):
    """Mailboxes resolve to one account; ``messages`` name them."""

    def __init__(self, messages: list[str]):
        super().__init__(" ".join(messages))
        self.messages = messages


@dataclass(frozen=True)
class Conflict:
    message: str
    addresses: frozenset[str]


def account(tenant, address: str, login: str = "") -> tuple:
    """The server and the account a mailbox's data lives in on ``tenant`` (by the login rule:
    its own login, else its address, whether it logs in itself or an admin acts for it)."""
    name = login if login and tenant.kind not in APP_KINDS else address
    return (tenant.kind, tenant.endpoint.strip().lower(), tenant.port, name.lower())


def conflicts(project: Project, rows) -> list[Conflict]:
    """Conflicts among ``rows`` (every mailbox the project has or would have: anything with
    ``source_address``, ``target_address``, ``source_login``, ``target_login``), and with
    the target accounts of the other projects that are not closed."""
    found = []
    for side in SIDES:
        tenant = project.source if side == "source" else project.target
        by_account: dict[tuple, list[str]] = {}
        for row in rows:
            address = getattr(row, f"{side}_address")
            key = account(tenant, address, getattr(row, f"{side}_login"))
            by_account.setdefault(key, []).append(address)
        for key, addresses in by_account.items():
            if len(addresses) > 1:
                names = " and ".join(sorted(addresses))
                found.append(
                    Conflict(
                        f"{names} would all log in to the {side} as {key[-1]}: one account "
                        "would be copied for several mailboxes. Give each its own login.",
                        frozenset(addresses),
                    )
                )
    found.extend(_taken_targets(project, rows))
    return found


def _taken_targets(project: Project, rows) -> list[Conflict]:
    target = project.target
    ours = {account(target, row.target_address, row.target_login): row for row in rows}
    others = (
        Mailbox.objects.filter(
            project__target__kind=target.kind,
            project__target__endpoint__iexact=target.endpoint.strip(),
            project__target__port=target.port,
        )
        .exclude(project=project)
        .exclude(project__state=Project.State.CLOSED)
        .select_related("project__target")
    )
    found = []
    for other in others:
        key = account(other.project.target, other.target_address, other.target_login)
        if key in ours:
            row = ours[key]
            found.append(
                Conflict(
                    f"{row.target_address} would write into the target account {key[-1]}, "
                    f"which project {other.project} already writes into "
                    f"(mailbox {other.source_address}).",
                    frozenset([row.source_address, row.target_address]),
                )
            )
    return found


def check(mailboxes) -> None:
    """Refuse (``IdentityRefused``) when any of ``mailboxes`` is in a conflict of its project."""
    by_project: dict[int, set[str]] = {}
    for mailbox in mailboxes:
        by_project.setdefault(mailbox.project_id, set()).update(
            (mailbox.source_address, mailbox.target_address)
        )
    messages = []
    for project in Project.objects.filter(pk__in=by_project).select_related("source", "target"):
        for conflict in conflicts(project, list(project.mailboxes.all())):
            if conflict.addresses & by_project[project.pk]:
                messages.append(conflict.message)
    if messages:
        raise IdentityRefused(messages)
