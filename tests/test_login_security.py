"""Login throttling: too many wrong passwords lock a username out from that address for a while."""

import logging

import pytest
from django.core.management import call_command

LOCKED = "Too many failed logins"


def log_in(client, username, password, url="/login/", address="127.0.0.1"):
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR=address)


def guess(client, username, times, url="/login/", address="127.0.0.1"):
    for number in range(times):
        log_in(client, username, f"guess-{number}", url, address)


@pytest.fixture
def root(django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.org", "password-root")


def test_right_password_refused_after_too_many_failures(client, alice, caplog):
    guess(client, "alice", 6)

    with caplog.at_level(logging.INFO):
        response = log_in(client, "alice", "password-alice")

    assert response.status_code == 429
    assert LOCKED in response.content.decode()
    assert "15 minutes" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert client.get("/").status_code == 302  # still sent to the login page
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "alice" in logged and "locking out" in logged.lower()
    assert "password-alice" not in logged and "guess-" not in logged


def test_failures_below_the_limit_do_not_lock(client, alice):
    guess(client, "alice", 4)

    assert log_in(client, "alice", "password-alice").status_code == 302


def test_limit_and_cool_off_come_from_settings(client, alice, settings):
    settings.AXES_FAILURE_LIMIT = 2
    guess(client, "alice", 2)

    assert log_in(client, "alice", "password-alice").status_code == 429


def test_lockout_is_per_username_and_address(client, alice, bob):
    guess(client, "alice", 6)

    # Another account from the same address, and the victim from elsewhere, still log in: an
    # attacker cannot lock a consultant out by guessing their username.
    assert log_in(client, "bob", "password-bob").status_code == 302
    client.logout()
    assert log_in(client, "alice", "password-alice", address="192.0.2.7").status_code == 302


def test_admin_login_is_throttled_too(client, root):
    guess(client, "root", 6, url="/admin/login/")

    response = log_in(client, "root", "password-root", url="/admin/login/")

    assert response.status_code == 429
    assert LOCKED in response.content.decode()
    assert client.get("/admin/").status_code == 302


def test_failures_on_either_form_count_together(client, root):
    guess(client, "root", 3, url="/admin/login/")
    guess(client, "root", 3)

    assert log_in(client, "root", "password-root").status_code == 429


def test_axes_reset_unlocks(client, alice):
    guess(client, "alice", 6)
    assert log_in(client, "alice", "password-alice").status_code == 429

    call_command("axes_reset_username", "alice")

    assert log_in(client, "alice", "password-alice").status_code == 302


def test_behind_the_proxy_the_address_it_saw_counts(client, alice, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    proxy = "10.0.0.2"

    def from_client(address, password):
        # The client may send its own X-Forwarded-For; the proxy appends the address it saw.
        forwarded = f"203.0.113.9, {address}"
        return client.post(
            "/login/",
            {"username": "alice", "password": password},
            REMOTE_ADDR=proxy,
            HTTP_X_FORWARDED_FOR=forwarded,
        )

    for number in range(6):
        from_client("198.51.100.1", f"guess-{number}")

    assert from_client("198.51.100.1", "password-alice").status_code == 429
    assert from_client("198.51.100.2", "password-alice").status_code == 302
