"""Shared fixtures: the people (alice owns a project, bob is a member, charlie an outsider)."""

import socket

import pytest

# Server fixtures, one module per real server the tests start on loopback.
pytest_plugins = [
    "tests.servers.worker",
    "tests.servers.dovecot",
    "tests.servers.redis",
    "tests.servers.chromium",
    "tests.servers.ews_server",
    "tests.servers.nsd",
    "tests.servers.graph_server",
]


@pytest.fixture
def refused_port():
    """A loopback port held bound but not listening: a connection is refused, and no other
    process can take the port while the test runs (a port merely free a moment ago could)."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]


@pytest.fixture(autouse=True)
def _plain_static_storage(settings):
    """Tests render pages without running collectstatic first."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """The default hasher is slow by design; tests create users by the dozen."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", "alice@example.org", "password-alice")


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob", "bob@example.org", "password-bob")


@pytest.fixture
def charlie(django_user_model):
    return django_user_model.objects.create_user("charlie", "charlie@example.org", "password-ch")


def make_project(members=(), client_name="Contoso", **fields):
    from projects.models import Project, Tenant

    project = Project.objects.create(
        client_name=client_name,
        source=Tenant.objects.create(kind="imap", endpoint="imap.old.example", username="admin"),
        target=Tenant.objects.create(kind="maildir", endpoint="/tmp/nowhere"),
        **fields,
    )
    project.members.set(members)
    return project


@pytest.fixture
def project(alice, bob):
    """Contoso's migration: alice and bob are members, charlie is not."""
    return make_project(members=[alice, bob])


@pytest.fixture
def mailbox(project):
    return project.mailboxes.create(
        source_address="ann@contoso.example", target_address="ann@contoso.onmicrosoft.example"
    )
