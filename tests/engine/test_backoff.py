"""Retry delays: exponential with jitter, capped, never shorter than the server's hint."""

from mailboxes.engine import backoff


def test_backoff_doubles_with_jitter_and_a_cap(settings):
    settings.COPY_RETRY_BASE_SECONDS = 2.0
    settings.COPY_RETRY_MAX_SECONDS = 30.0
    assert 2.0 <= backoff(1, None) <= 2.5
    assert 8.0 <= backoff(3, None) <= 10.0
    assert 30.0 <= backoff(10, None) <= 37.5


def test_backoff_honours_the_servers_retry_after(settings):
    settings.COPY_RETRY_BASE_SECONDS = 2.0
    assert backoff(1, 45.0) == 45.0
