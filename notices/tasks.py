from celery import shared_task

from .models import Notice
from .services import TransientDelivery, deliver

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


def queue_sending(notice_ids) -> None:
    ids = sorted(notice_ids)
    for start in range(0, len(ids), BATCH):
        send_notices.delay(ids[start : start + BATCH])
