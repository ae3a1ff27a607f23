"""Beat as production runs it (``celery worker --beat``) re-checks a project in cutover on its
own: nothing else queues the check, yet the grid and the checklist move."""

import pytest

from dnscheck.models import DnsCheck
from projects.cutover import ensure_checklist
from tests.servers.worker import wait_until

from .zones import serve_target_records

# Beat's first re-check comes one interval (60 s) after it starts.
BEAT_INTERVAL = 60


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_beat_rechecks_a_project_in_cutover_and_ticks_its_step(start_worker, domain, old_dns):
    project = domain.project
    project.state = "cutover"
    project.save()
    ensure_checklist(project)
    serve_target_records(old_dns)
    worker = start_worker(env={"DNSCHECK_RESOLVERS": ""}, concurrency=1, beat=True)
    check = wait_until(
        lambda: DnsCheck.objects.filter(domain=domain).first(),
        timeout=3 * BEAT_INTERVAL,
        interval=0.5,
        message=lambda: f"beat never had the domain checked:\n{worker.log()[-3000:]}",
    )
    assert check.ok, (check.error, check.findings)
    assert "dnscheck.tasks.recheck_cutover_projects" in worker.log()
    wait_until(lambda: project.cutover_steps.get(key="target-records").is_done)
    assert project.cutover_steps.get(key="target-records").done_by is None
