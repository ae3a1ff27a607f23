"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives and can refuse
chosen recipients with 550."""

import os
import socket
from email import message_from_bytes, policy

import pytest

try:
    from aiosmtpd.controller import Controller
except ImportError:  # pragma: no cover - CI installs the dev dependencies
    Controller = None


class Mailbag:
    def __init__(self):
        self.messages, self.refuse = [], set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append((list(envelope.rcpt_tos), message))
        return "250 Message accepted"

    def to(self, address):
        return [m for rcpt, m in self.messages if address in rcpt]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp_server(settings):
    if Controller is None:
        if os.environ.get("CI") == "true":
            pytest.fail("aiosmtpd is missing: pip install -e '.[dev]'")
        pytest.skip("aiosmtpd is not installed")
    bag = Mailbag()
    port = _free_port()
    controller = Controller(bag, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_USE_TLS = "127.0.0.1", port, False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    try:
        yield bag
    finally:
        controller.stop()
