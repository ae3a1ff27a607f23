"""Beat re-checks projects in cutover every minute, and only those."""

import pytest

from dnscheck.models import DnsCheck
from dnscheck.tasks import check_project_dns, recheck_cutover_projects
from migrator.celery import app
from projects.cutover import ensure_checklist
from tests.conftest import make_project
from tests.servers.worker import purge_filesystem_broker, queued_tasks

pytestmark = pytest.mark.django_db


def test_beat_schedule_runs_every_minute():
    entry = app.conf.beat_schedule["dnscheck-recheck-cutover"]
    assert entry == {"task": "dnscheck.tasks.recheck_cutover_projects", "schedule": 60.0}
    assert recheck_cutover_projects.name == entry["task"]


def test_only_projects_in_cutover_are_checked(domain, old_dns):
    cutover = domain.project
    cutover.state = "cutover"
    cutover.save()
    other = make_project(client_name="Fabrikam")
    idle = other.domains.create(name="fabrikam.test", nameservers=old_dns.address)
    purge_filesystem_broker()
    recheck_cutover_projects()
    # The beat's task queues one check per project in cutover, for the worker to run.
    assert queued_tasks() == [(check_project_dns.name, [], {"project_id": cutover.pk})]
    check_project_dns(project_id=cutover.pk)
    assert DnsCheck.objects.filter(domain=domain).count() == 1
    assert not DnsCheck.objects.filter(domain=idle).exists()


def test_recheck_ticks_steps(domain, old_dns):
    from tests.dnscheck.zones import serve_target_records

    project = domain.project
    project.state = "cutover"
    project.save()
    ensure_checklist(project)
    serve_target_records(old_dns)
    check_project_dns(project_id=project.pk)
    assert project.cutover_steps.get(key="target-records").is_done


def test_a_project_that_left_cutover_is_skipped(domain):
    check_project_dns(project_id=domain.project_id)  # still planning
    assert not DnsCheck.objects.exists()
