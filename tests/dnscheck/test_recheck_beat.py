"""The minute's re-check through a real Celery worker process: the grid and the checklist move."""

import pytest

from dnscheck.models import DnsCheck
from dnscheck.tasks import recheck_cutover_projects
from projects.cutover import ensure_checklist
from tests.servers.worker import Worker, wait_until

from .zones import serve_target_records


@pytest.mark.django_db(transaction=True)
def test_worker_rechecks_and_ticks(tmp_path, domain, old_dns):
    project = domain.project
    project.state = "cutover"
    project.save()
    ensure_checklist(project)
    serve_target_records(old_dns)
    worker = Worker(tmp_path / "worker", extra_env={"DNSCHECK_RESOLVERS": ""}).start(1)
    try:
        recheck_cutover_projects.delay()
        check = wait_until(
            lambda: DnsCheck.objects.filter(domain=domain).first(),
            message="the worker did not check the domain",
        )
        assert check.ok, (check.error, check.findings)
        step = project.cutover_steps.get(key="target-records")
        wait_until(lambda: project.cutover_steps.get(key="target-records").is_done)
        step.refresh_from_db()
        assert step.done_by is None
    finally:
        worker.stop()
