from celery import shared_task
from django.db import transaction

from .models import Notice
from .services import TransientDelivery, deliver, queue_for

# Notices per task: one SMTP connection each, short enough to stay far below the time limit.
BATCH = 50


@shared_task(
    autoretry_for=(TransientDelivery,),
    retry_backoff=True,
    retry_jitter=True,
    max_retries=6,
)
def send_notices(notice_ids: list[int]) -> None:
    """Send the outbox messages ``notice_ids`` that are not delivered yet; a rerun sends
    nothing twice."""
    deliver(list(Notice.objects.filter(pk__in=notice_ids).unsent().order_by("pk")))


@shared_task
def check_workers() -> None:
    """Every minute from beat, on the checks queue: a dead copy worker cannot say so itself."""
    from .events import workers_silent

    workers_silent()


def queue_sending(notice_ids) -> None:
    ids = sorted(notice_ids)
    for start in range(0, len(ids), BATCH):
        send_notices.delay(ids[start : start + BATCH])


def send_on_commit(notice_ids) -> None:
    """The worker sends once the rows are committed: never in the request or the event."""
    ids = list(notice_ids)
    if ids:
        transaction.on_commit(lambda: queue_sending(ids))


def send_template(mailboxes, kind: str, again: bool = False) -> tuple[int, int]:
    """Put ``kind`` in the outbox for each mailbox and have the worker send the new ones;
    (queued, skipped because that mailbox already has it)."""
    queued = queue_for(mailboxes, kind, again=again)
    new = [notice.pk for _, notice, fresh in queued if fresh]
    send_on_commit(new)
    return len(new), len(queued) - len(new)


def queued_message(kind: str, queued: int, skipped: int) -> str:
    """What a consultant is told after ``send_template``."""
    sent = f"'{kind}' message queued for {queued} mailbox{'es' if queued != 1 else ''}"
    if not skipped:
        return f"{sent}."
    return (
        f"{sent}; {skipped} skipped: they already have it (the Notifications page sends one again)."
    )
