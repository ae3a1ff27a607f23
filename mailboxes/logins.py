"""The "Test logins" action: each mailbox's source and target login tried in the worker and
shown on its row.

The page sets ``login_check_requested_at`` and queues ``tasks.check_mailbox_logins``; the worker
records ``login_check_ok`` and a message naming both sides. A test that never answers (no worker
running, a message the embedded broker dropped) stops showing "testing…" after
``PENDING_FOR`` and says so, so no row waits for ever.
"""

import logging
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from .connectors import ConnectorError, open_connector
from .models import SIDES, Mailbox

log = logging.getLogger(__name__)

# Mailboxes per task: each login test may wait on a connection timeout, so a task stays short.
PER_TASK = 10
# Rows one poll of the project page asks about: one page of mailboxes.
POLLED_ROWS = 50
# A login test takes seconds; longer than this and it is not coming.
PENDING_FOR = timedelta(minutes=10)
NO_ANSWER = "No answer from the worker: is one running? Test again."


def is_pending(mailbox: Mailbox, now=None) -> bool:
    requested = mailbox.login_check_requested_at
    if requested is None:
        return False
    answered = mailbox.login_checked_at is not None and mailbox.login_checked_at >= requested
    return not answered and requested > (now or timezone.now()) - PENDING_FOR


def never_answered(mailbox: Mailbox, now=None) -> bool:
    requested = mailbox.login_check_requested_at
    if requested is None or is_pending(mailbox, now):
        return False
    return mailbox.login_checked_at is None or mailbox.login_checked_at < requested


def request_checks(mailboxes) -> int:
    """Mark ``mailboxes`` as being tested and queue the tests once this transaction commits;
    returns how many."""
    from .tasks import check_mailbox_logins

    if hasattr(mailboxes, "values_list"):
        ids = list(mailboxes.values_list("pk", flat=True))
    else:
        ids = [mailbox.pk for mailbox in mailboxes]
    Mailbox.objects.filter(pk__in=ids).update(login_check_requested_at=timezone.now())
    for start in range(0, len(ids), PER_TASK):
        chunk = ids[start : start + PER_TASK]
        transaction.on_commit(lambda chunk=chunk: check_mailbox_logins.delay(chunk))
    return len(ids)


def check_side(mailbox: Mailbox, side: str) -> tuple[bool, str]:
    """Log in on ``side`` the way a pass would (``Mailbox.endpoint``); never raises."""
    try:
        endpoint = mailbox.endpoint(side)
        with open_connector(endpoint, mailbox.address(side)) as connector:
            return True, connector.check()
    except ConnectorError as exc:
        return False, str(exc)
    except Exception:
        # A connector bug must still end "testing…" with a message, not leave it hanging.
        log.exception("login test of mailbox %s (%s) crashed", mailbox.pk, side)
        return False, "The login test failed unexpectedly; see the worker log."


def check_mailbox(mailbox: Mailbox) -> tuple[bool, str]:
    results = [(side, *check_side(mailbox, side)) for side in SIDES]
    ok = all(result_ok for _, result_ok, _ in results)
    parts = (f"{side}: {message.rstrip('.')}" for side, _, message in results)
    return ok, "; ".join(parts) + "."


def record(mailbox_id: int, ok: bool, message: str) -> None:
    # Only these fields: a copy worker may be updating the same row's counters right now.
    Mailbox.objects.filter(pk=mailbox_id).update(
        login_checked_at=timezone.now(), login_check_ok=ok, login_check_message=message
    )


def check_mailboxes(mailbox_ids) -> None:
    """Test and record each mailbox's logins; a mailbox deleted meanwhile is skipped."""
    mailboxes = Mailbox.objects.filter(pk__in=mailbox_ids).select_related(
        "project__source", "project__target"
    )
    for mailbox in mailboxes:
        try:
            ok, message = check_mailbox(mailbox)
        except Exception:
            log.exception("login test of mailbox %s crashed", mailbox.pk)
            ok, message = False, "The login test failed unexpectedly; see the worker log."
        log.info("login test of mailbox %s: %s", mailbox.pk, "ok" if ok else "failed")
        record(mailbox.pk, ok, message)
