"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives and can refuse
chosen recipients with 550."""

import os
import re
from datetime import UTC, datetime
from email import message_from_bytes, policy

import pytest

from projects.models import Project

try:
    from aiosmtpd.controller import Controller
except ImportError:  # pragma: no cover - CI installs the dev dependencies
    Controller = None

CUTOVER = datetime(2027, 1, 9, 17, 0, tzinfo=UTC)
PEOPLE = [
    ("ann@contoso.example", "Ann Archer"),
    ("ben@contoso.example", "Ben <b>Bold</b>"),
    ("cat@contoso.example", "Cat Cole"),
]


class Mailbag:
    def __init__(self):
        self.messages, self.refuse = [], set()
        self.busy = 0  # how many more recipients to put off with a 4xx (try again later)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.busy:
            self.busy -= 1
            return "451 4.3.0 try again later"
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


class _PortZeroController(Controller or object):
    """Binds port 0 and keeps the port the kernel gave: no other process can take it between
    choosing and binding."""

    def _trigger_server(self):
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


@pytest.fixture
def smtp_server(settings):
    if Controller is None:
        if os.environ.get("CI") == "true":
            pytest.fail("aiosmtpd is missing: pip install -e '.[dev]'")
        pytest.skip("aiosmtpd is not installed")
    bag = Mailbag()
    controller = _PortZeroController(bag, hostname="127.0.0.1", port=0)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_USE_TLS = "127.0.0.1", False
    settings.EMAIL_PORT = controller.port
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    try:
        yield bag
    finally:
        controller.stop()


@pytest.fixture
def users(project):
    """Three end users, each with their own addresses and name (one name is markup), in a
    project whose cutover date is set: the messages name it."""
    project.planned_cutover = CUTOVER
    Project.objects.filter(pk=project.pk).update(planned_cutover=CUTOVER)
    return [
        project.mailboxes.create(
            source_address=address,
            target_address=address.replace("contoso.example", "contoso.onmicrosoft.example"),
            display_name=name,
        )
        for address, name in PEOPLE
    ]


@pytest.fixture
def eager_tasks():
    """The worker's part runs in this process: what it does is what is tested here."""
    from migrator.celery import app

    saved, app.conf.task_always_eager = app.conf.task_always_eager, True
    yield
    app.conf.task_always_eager = saved


def link_in(message) -> str:
    """The progress link's path in a received message's plain-text part."""
    text = message.get_body(("plain",)).get_content()
    return re.search(r"http://testserver(/progress/[^/\s]+/)", text).group(1)
