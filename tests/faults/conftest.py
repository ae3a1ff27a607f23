"""Fixtures for broken parts: a Redis broker this process publishes to and a test may stop."""

import pytest


@pytest.fixture
def redis_broker(redis_server):
    """This process (the web server's role) publishes to ``redis_server``, as in production."""
    from migrator.celery import app

    saved = app.conf.broker_url, app.conf.broker_transport_options
    app.conf.broker_url, app.conf.broker_transport_options = redis_server.url, {}
    app._after_fork()  # forget the connection pools bound to the embedded broker
    yield redis_server
    app.conf.broker_url, app.conf.broker_transport_options = saved
    app._after_fork()
