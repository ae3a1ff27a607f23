import os

from celery import Celery
from django.conf import settings
from kombu.transport import TRANSPORT_ALIASES

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "migrator.settings")

app = Celery("migrator")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# redis:// and rediss:// brokers use kombu's Redis transport with the fix that keeps a worker
# alive when Redis restarts (migrator/broker.py).
TRANSPORT_ALIASES["redis"] = TRANSPORT_ALIASES["rediss"] = "migrator.broker:Transport"


# Copy workers record that they are alive; the pages say when none has answered.
app.steps["worker"].add("mailboxes.workers:HeartbeatStep")

app.conf.beat_schedule = {
    # Resumption does not rely on the broker redelivering a dead worker's messages (the
    # embedded broker drops them): expired folder-job leases in the database are queued again,
    # and so is what could not be queued while the broker was unreachable.
    "requeue-stalled-copy-jobs": {
        "task": "mailboxes.tasks.requeue_stalled_jobs",
        "schedule": float(settings.COPY_SWEEP_SECONDS),
    },
    # During cutover the DNS grid and the automatic checklist steps refresh every minute.
    "dnscheck-recheck-cutover": {
        "task": "dnscheck.tasks.recheck_cutover_projects",
        "schedule": 60.0,
    },
    # Scheduled passes and run windows live in the database; beat only wakes them up.
    "schedules-run-due": {
        "task": "schedules.tasks.run_schedules",
        "schedule": float(settings.SCHEDULES_TICK_SECONDS),
    },
    # Consultants hear when no copy worker answers while passes wait (notices, checks queue).
    "notices-check-workers": {
        "task": "notices.tasks.check_workers",
        "schedule": 60.0,
    },
}
