"""Issue 12, production hardening of tenants: maildir folders only under MAILDIR_ROOT and only
for staff; endpoints never on the machine itself nor the app's own services (on save, and again
in the worker when it connects); the Graph certificate key encrypted and never shown; connector
options checked against their schema."""

import importlib
import os
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.apps import apps
from django.db import connection
from django.urls import reverse

from dnscheck.services import check_domain
from mailboxes.connectors import open_connector
from projects.models import Project, Tenant
from projects.tasks import check_tenant
from tests.graph.conftest import register_certificate_app
from tests.servers.graph_server import TENANT_ID

from .helpers import form_data, recorded_check

HINT = "set ALLOW_LOCAL_ENDPOINTS=1 to allow it"


@pytest.fixture
def staff(alice):
    alice.is_staff = True
    alice.save()
    return alice


def post_project(client, **fields):
    return client.post(reverse("project_create"), form_data(**fields))


def maildir_target(path) -> dict:
    return {"target-kind": "maildir", "target-shown_kind": "maildir", "target-endpoint": str(path)}


def stored_column(tenant, column) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM projects_tenant WHERE id = %s", [tenant.pk])
        return str(cursor.fetchone()[0])


@pytest.mark.django_db
class TestMaildirIsForStaff:
    def test_the_kind_is_offered_to_staff_only(self, client, alice):
        client.force_login(alice)
        assert 'value="maildir"' not in client.get(reverse("project_create")).content.decode()
        alice.is_staff = True
        alice.save()
        assert 'value="maildir"' in client.get(reverse("project_create")).content.decode()

    def test_a_maildir_posted_by_a_consultant_is_refused(self, client, alice, settings, tmp_path):
        settings.MAILDIR_ROOT = str(tmp_path)
        client.force_login(alice)
        response = post_project(client, **maildir_target(tmp_path))
        assert response.status_code == 200
        assert "Only staff may set up a local maildir tenant." in response.content.decode()
        assert not Project.objects.exists()

    def test_a_consultant_cannot_repoint_a_maildir_tenant(self, client, bob, project, tmp_path):
        client.force_login(bob)
        data = form_data(**maildir_target(tmp_path), **{"source-shown_kind": "imap"})
        response = client.post(reverse("project_edit", args=[project.pk]), data)
        assert response.status_code == 302
        project.target.refresh_from_db()
        assert (project.target.kind, project.target.endpoint) == ("maildir", "/tmp/nowhere")


@pytest.mark.django_db
class TestMaildirRoot:
    @pytest.fixture
    def root(self, settings, tmp_path):
        (tmp_path / "root" / "contoso").mkdir(parents=True)
        (tmp_path / "mail" / "ann" / "Maildir" / "cur").mkdir(parents=True)
        settings.MAILDIR_ROOT = str(tmp_path / "root")
        return tmp_path / "root"

    def test_a_folder_under_the_root_is_saved(self, client, staff, root):
        client.force_login(staff)
        assert post_project(client, **maildir_target(root / "contoso")).status_code == 302
        assert Project.objects.get().target.endpoint == str(root / "contoso")

    @pytest.mark.parametrize(
        "path", ["{tmp}/mail/ann/Maildir", "{root}/../mail/ann/Maildir", "{root}/copied"]
    )
    def test_a_folder_outside_the_root_is_a_form_error(self, client, staff, root, path):
        # "copied" is a symbolic link inside the root to another client's store.
        (root / "copied").symlink_to(root.parent / "mail" / "ann" / "Maildir")
        client.force_login(staff)
        response = post_project(client, **maildir_target(path.format(tmp=root.parent, root=root)))
        assert response.status_code == 200 and not Project.objects.exists()
        assert "maildir root" in response.content.decode()

    def test_the_worker_refuses_a_folder_outside_the_root(self, project, root):
        """Saved before MAILDIR_ROOT was set, or changed in the database: still refused."""
        target = project.target
        Tenant.objects.filter(pk=target.pk).update(endpoint=str(root.parent / "mail" / "ann"))
        check_tenant(target.pk)
        target.refresh_from_db()
        assert target.last_check_ok is False
        assert "not under the maildir root" in target.last_check_message


# On-premises servers: allowed whatever ALLOW_LOCAL_ENDPOINTS says.
PRIVATE = {"source-endpoint": "10.1.2.3", "target-endpoint": "https://192.168.1.5/EWS/x.asmx"}


@pytest.mark.django_db
class TestLocalEndpoints:
    @pytest.fixture(autouse=True)
    def strict(self, settings):
        settings.ALLOW_LOCAL_ENDPOINTS = False
        settings.SERVICE_HOSTS = ["10.9.8.7"]

    @pytest.mark.parametrize(
        "fields, message",
        [
            (
                {"source-endpoint": "127.0.0.1", "source-port": "6379"},
                f"endpoint 127.0.0.1:6379 is a loopback address; {HINT}",
            ),
            (
                {"source-endpoint": "localhost", "source-port": "5432"},
                "endpoint localhost:5432 resolves to ",
            ),
            (
                {"target-endpoint": "http://127.0.0.1:6379/EWS/Exchange.asmx"},
                f"endpoint 127.0.0.1:6379 is a loopback address; {HINT}",
            ),
            (
                {"target-oauth_authority": "https://169.254.169.254/tid"},
                "endpoint 169.254.169.254:443 is a link-local address",
            ),
            (
                {"source-endpoint": "10.9.8.7"},
                "endpoint 10.9.8.7:993 is an address of the app&#x27;s own services",
            ),
        ],
    )
    def test_the_form_names_the_refused_address(self, client, alice, fields, message):
        client.force_login(alice)
        response = post_project(client, **{**PRIVATE, **fields})
        assert response.status_code == 200 and not Project.objects.exists()
        assert message in response.content.decode()

    def test_a_url_with_a_broken_port_is_no_crash(self, client, alice):
        client.force_login(alice)
        broken = {**PRIVATE, "target-endpoint": "http://127.0.0.1:port/EWS/Exchange.asmx"}
        response = post_project(client, **broken)
        assert "endpoint 127.0.0.1:80 is a loopback address" in response.content.decode()

    def test_private_ranges_stay_allowed(self, client, alice):
        client.force_login(alice)
        assert post_project(client, **PRIVATE).status_code == 302

    def test_allowed_when_local_endpoints_are(self, client, alice, settings):
        settings.ALLOW_LOCAL_ENDPOINTS = True
        client.force_login(alice)
        assert post_project(client, **{"source-endpoint": "127.0.0.1"}).status_code == 302


def connections_received(port: int) -> int:
    """Redis's own count of the connections it accepted (this query's included)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as redis:
        redis.sendall(b"INFO stats\r\n")
        reply = b""
        while not reply.endswith(b"\r\n\r\n") and b"total_connections_received" not in reply:
            reply += redis.recv(65536)
    line = next(x for x in reply.split(b"\r\n") if x.startswith(b"total_connections_received"))
    return int(line.split(b":")[1])


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_never_connects_to_the_apps_redis(client, bob, project, redis_url, start_worker):
    """ "Test connection" with local endpoints off, the IMAP host being the test Redis: the
    worker process refuses with the message and Redis sees no connection from it."""
    worker = start_worker(env={"ALLOW_LOCAL_ENDPOINTS": "0"})
    source, port = project.source, urlsplit(redis_url).port
    source.endpoint, source.port, source.security = "127.0.0.1", port, "plain"
    source.options = {"timeout": 2}
    source.save()
    before = connections_received(port)
    client.force_login(bob)
    client.post(reverse("tenant_check", args=[project.pk, "source"]), headers={"HX-Request": "1"})
    tenant = recorded_check(source, worker)
    assert tenant.last_check_ok is False
    assert tenant.last_check_message == f"endpoint 127.0.0.1:{port} is a loopback address; {HINT}"
    assert connections_received(port) == before + 1  # this count's own query only


PEM_LINE = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"  # how every unencrypted PKCS#8 RSA key starts


@pytest.mark.django_db
class TestCertificateKey:
    @pytest.fixture
    def key_pem(self):
        return f"-----BEGIN PRIVATE KEY-----\n{PEM_LINE}secret\n-----END PRIVATE KEY-----\n"

    def graph_target(self, key_pem) -> dict:
        return {
            "target-kind": "exchange_online",
            "target-shown_kind": "exchange_online",
            "target-endpoint": "",
            "target-certificate_key": key_pem,
            "target-secret": "",
            "target-options": '{"certificate_thumbprint": "d9b5348b"}',
        }

    def test_stored_encrypted_never_shown_and_kept_when_left_empty(self, client, alice, key_pem):
        client.force_login(alice)
        assert post_project(client, **self.graph_target(key_pem)).status_code == 302
        project = Project.objects.get()
        target = project.target
        assert target.certificate_key == key_pem.strip()
        assert "certificate_pem" not in target.options
        assert PEM_LINE not in stored_column(target, "certificate_key")
        assert PEM_LINE not in stored_column(target, "options")
        edit = reverse("project_edit", args=[project.pk])
        assert PEM_LINE not in client.get(edit).content.decode()
        unchanged = {**self.graph_target(""), "client_name": "Fabrikam Ltd"}
        assert client.post(edit, form_data(**unchanged)).status_code == 302
        target.refresh_from_db()
        assert target.certificate_key == key_pem.strip()

    def test_a_key_in_the_options_moves_to_the_encrypted_field(self, key_pem):
        tenant = Tenant.objects.create(
            kind="exchange_online",
            options={"certificate_pem": key_pem, "certificate_thumbprint": "d9b5348b"},
        )
        migration = importlib.import_module("projects.migrations.0005_tenant_certificate_key")
        migration.keys_out_of_options(apps, None)
        tenant.refresh_from_db()
        assert tenant.options == {"certificate_thumbprint": "d9b5348b"}
        assert tenant.certificate_key == key_pem
        assert PEM_LINE not in stored_column(tenant, "certificate_key")


@pytest.mark.django_db
def test_graph_logs_in_with_the_stored_certificate_key(graph_server):
    graph_server.add_user("ann@example.org")
    key_pem, thumbprint = register_certificate_app(graph_server, "cert-app")
    tenant = Tenant.objects.create(
        kind="exchange_online",
        endpoint=graph_server.graph_url,
        auth_method="oauth2",
        oauth_tenant_id=TENANT_ID,
        oauth_client_id="cert-app",
        oauth_authority=graph_server.authority,
        certificate_key=key_pem,
        options={"ca_file": str(graph_server.cert_file), "certificate_thumbprint": thumbprint},
    )
    tenant.refresh_from_db()
    with open_connector(tenant.endpoint_config(), "ann@example.org") as graph:
        assert graph.check().startswith("Connected")


@pytest.mark.django_db
class TestOptions:
    @pytest.mark.parametrize(
        "options, message",
        [
            ('{"timeout": "abc"}', "Option timeout must be a number from 0.1 to 120, not"),
            ('{"timeout": 3600}', "Option timeout must be a number from 0.1 to 120, not 3600"),
            ('{"timout": 30}', "Unknown option timout (this kind of tenant takes"),
            ('["timeout"]', "The connector options must be a JSON object"),
            (
                '{"max_item_size": 12}',
                "Option max_item_size must be a whole number from 1,024 to 10,737,418,240, not 12",
            ),
        ],
    )
    def test_the_form_names_the_bad_option(self, client, alice, options, message):
        client.force_login(alice)
        response = post_project(client, **{"source-options": options})
        assert response.status_code == 200 and not Project.objects.exists()
        assert message in response.content.decode()

    def test_valid_options_are_saved(self, client, alice):
        client.force_login(alice)
        options = '{"timeout": 30, "disable": ["MULTIAPPEND"], "concurrency": 2}'
        assert post_project(client, **{"source-options": options}).status_code == 302
        assert Project.objects.get().source.options["disable"] == ["MULTIAPPEND"]

    def test_junk_written_to_the_database_fails_the_test_with_a_message(self, project):
        """Not "failed unexpectedly" (a ValueError), and never a check left pending."""
        Tenant.objects.filter(pk=project.source.pk).update(options={"timeout": "abc"})
        check_tenant(project.source.pk)
        project.source.refresh_from_db()
        assert project.source.last_check_ok is False
        assert "option timeout must be a number" in project.source.last_check_message


@pytest.mark.django_db
class TestSplitDnsServers:
    """The nameservers a project may name for its domain are endpoints like any other."""

    @pytest.fixture(autouse=True)
    def strict(self, settings):
        settings.ALLOW_LOCAL_ENDPOINTS = False

    def test_a_loopback_nameserver_is_refused_when_saved(self, client, bob, project):
        domain = project.domains.create(name="contoso.example")
        client.force_login(bob)
        response = client.post(
            reverse("dns_nameservers", args=[project.pk]),
            {"domain": domain.pk, "nameservers": "10.0.0.53, 127.0.0.1:6379"},
            follow=True,
        )
        assert f"endpoint 127.0.0.1:6379 is a loopback address; {HINT}" in response.content.decode()
        domain.refresh_from_db()
        assert domain.nameservers == ""

    def test_a_check_refuses_a_nameserver_saved_before(self, project):
        domain = project.domains.create(name="contoso.example", nameservers="127.0.0.1:6379")
        check = check_domain(domain)
        assert f"endpoint 127.0.0.1:6379 is a loopback address; {HINT}" in check.error


def test_outside_the_tests_local_endpoints_are_refused_and_maildirs_confined(tmp_path):
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTEST_VERSION", "ALLOW_LOCAL_ENDPOINTS")
    }
    env.pop("MAILDIR_ROOT", None)
    code = "from django.conf import settings as s; print(s.ALLOW_LOCAL_ENDPOINTS, s.MAILDIR_ROOT)"
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-v", "0", "-c", code],
        cwd=Path(__file__).resolve().parents[2],
        env={**env, "MAILFERRY_VAR_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.stdout.split() == ["False", str(tmp_path / "maildir")], result.stderr
