import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "migrator.settings")

app = Celery("migrator")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

app.conf.beat_schedule = {
    # Resumption does not rely on the broker redelivering a dead worker's messages (the
    # embedded broker drops them): expired folder-job leases in the database are queued again.
    "requeue-stalled-copy-jobs": {
        "task": "mailboxes.tasks.requeue_stalled_jobs",
        "schedule": 60.0,
    },
    # During cutover the DNS grid and the automatic checklist steps refresh every minute.
    "dnscheck-recheck-cutover": {
        "task": "dnscheck.tasks.recheck_cutover_projects",
        "schedule": 60.0,
    },
}
