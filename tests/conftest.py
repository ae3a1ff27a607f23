"""Shared fixtures: the people (alice owns a project, bob is a member, charlie an outsider)."""

import pytest

# Server fixtures, one module per real server the tests start on loopback.
pytest_plugins = ["tests.servers.dovecot"]


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", "alice@example.org", "password-alice")


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob", "bob@example.org", "password-bob")


@pytest.fixture
def charlie(django_user_model):
    return django_user_model.objects.create_user("charlie", "charlie@example.org", "password-ch")
