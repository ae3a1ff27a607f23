from celery import shared_task

from . import services


@shared_task
def run_schedules() -> None:
    """Every minute from beat (migrator/celery.py): due schedules and run windows."""
    services.tick()
