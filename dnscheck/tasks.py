"""Beat re-checks every project in its cutover state once a minute."""

from celery import shared_task

from projects.cutover import auto_tick
from projects.models import Project

from .services import check_project, refresh_tenant_records

TASK_OPTIONS = {"acks_late": True, "reject_on_worker_lost": True, "ignore_result": True}


@shared_task(**TASK_OPTIONS)
def recheck_cutover_projects() -> None:
    for project_id in Project.objects.filter(state=Project.State.CUTOVER).values_list(
        "id", flat=True
    ):
        check_project_dns.delay(project_id=project_id)


@shared_task(**TASK_OPTIONS)
def check_project_dns(*, project_id: int) -> None:
    """Read the tenant's records again when an hour old, check every domain of the project,
    then tick the steps whose checks now pass."""
    project = (
        Project.objects.filter(pk=project_id, state=Project.State.CUTOVER)
        .select_related("source", "target")
        .first()
    )
    if project is None:
        return  # left cutover since it was queued
    refresh_tenant_records(project)
    check_project(project)
    auto_tick(project)
