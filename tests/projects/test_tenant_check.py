import pytest
from django.urls import reverse

from projects.models import Tenant
from projects.tasks import check_tenant
from tests.servers.worker import purge_filesystem_broker, queued_tasks

from .helpers import recorded_check


def url(project, side="source"):
    return reverse("tenant_check", args=[project.pk, side])


@pytest.mark.django_db
class TestTenantCheckView:
    def test_post_queues_the_test_on_commit(
        self, client, bob, project, django_capture_on_commit_callbacks
    ):
        client.force_login(bob)
        purge_filesystem_broker()
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(url(project), headers={"HX-Request": "true"})
        assert response.status_code == 200
        assert b"Testing the connection" in response.content
        assert b'hx-trigger="every 1s"' in response.content
        # Once committed, the source's test waits in the broker for a worker, nothing else.
        assert queued_tasks() == [("projects.tasks.check_tenant", [project.source.pk], {})]
        project.source.refresh_from_db()
        assert project.source.check_pending

    def test_poll_stops_once_the_worker_answered(self, client, bob, project):
        project.source.request_check()
        project.source.record_check(False, "Connection refused by imap.old.example:993")
        client.force_login(bob)
        response = client.get(url(project), headers={"HX-Request": "true"})
        assert response.status_code == 286  # htmx: stop polling
        assert b"Connection refused by imap.old.example:993" in response.content

    def test_unknown_side_is_404(self, client, bob, project):
        client.force_login(bob)
        assert client.get(url(project, "sideways")).status_code == 404

    def test_without_htmx_redirects_back(self, client, bob, project):
        client.force_login(bob)
        response = client.post(url(project))
        assert response.status_code == 302 and response["Location"] == project.get_absolute_url()


@pytest.mark.django_db
class TestCheckTenantTask:
    def test_kind_without_connector_says_so(self, project):
        project.source.kind = "gopher"
        project.source.save()
        check_tenant(project.source.pk)
        project.source.refresh_from_db()
        assert project.source.last_check_ok is False
        assert "no connector for tenant kind 'gopher'" in project.source.last_check_message

    def test_maildir_folder_that_does_not_exist(self, project, tmp_path):
        target = project.target
        target.endpoint = str(tmp_path / "missing")
        target.save()
        check_tenant(target.pk)
        target.refresh_from_db()
        assert target.last_check_ok is False
        assert str(tmp_path / "missing") in target.last_check_message


def configure_missing_maildir(tenant, tmp_path):
    tenant.kind = Tenant.Kind.MAILDIR
    tenant.endpoint = str(tmp_path / "not-there")
    tenant.save()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_web_request_is_done_by_a_worker_process(client, bob, project, tmp_path, start_worker):
    """Embedded default: the web process only queues; a separate worker process runs the test."""
    worker = start_worker("worker")
    configure_missing_maildir(project.source, tmp_path)
    client.force_login(bob)
    client.post(url(project), headers={"HX-Request": "true"})
    tenant = recorded_check(project.source, worker)
    assert tenant.last_check_ok is False
    assert "not-there" in tenant.last_check_message
    assert "projects.tasks.check_tenant" in worker.log()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_worker_on_redis_broker(project, tmp_path, redis_url, start_worker):
    """Production broker: a task published to a real Redis is run by a worker reading it."""
    from migrator.celery import app

    worker = start_worker("worker", broker_url=redis_url)
    configure_missing_maildir(project.source, tmp_path)
    with app.connection_for_write(redis_url) as connection:
        check_tenant.apply_async((project.source.pk,), connection=connection)
    assert recorded_check(project.source, worker).last_check_ok is False
    assert "redis://" in worker.log()


@pytest.mark.django_db
def test_project_page_offers_both_connection_tests(client, bob, project):
    project.target.request_check()
    project.target.record_check(True, "Connected: 7 folders in ann@contoso.example.")
    client.force_login(bob)
    response = client.get(project.get_absolute_url())
    assert response.content.count(b"Test source connection") == 1
    assert response.content.count(b"Test target connection") == 1
    assert b"Connected: 7 folders in ann@contoso.example." in response.content
    assert b"Not tested yet." in response.content
