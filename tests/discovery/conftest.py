"""Discovery against real Dovecot servers: three source mailboxes on ``dovecot_a``, each with
its own password and content, and a target server with a small quota and an item size limit.

Figures are checked against what the servers hold, counted here with plain imaplib."""

from __future__ import annotations

import imaplib
import os
import re
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailboxes.models import Mailbox
from projects.models import Project
from tests.corpus import corpus_messages
from tests.engine.conftest import tenant_for
from tests.engine.messages import message
from tests.servers import require_binary
from tests.servers.dovecot import DovecotServer, RawMessage, start_dovecot

# The target server: every user has a 2 MB quota, and messages above 200,000 bytes are refused
# (quota_max_mail_size; Dovecot 2.3 enforces it without announcing APPENDLIMIT, so the target
# tenant states it in its max_item_size option).
TARGET_QUOTA = "2M"
TARGET_MAX_MESSAGE = 200_000
BULK_ITEMS = 20_000

_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")
_DATE = re.compile(rb'INTERNALDATE "([^"]+)"')
_NAME = re.compile(r'\) "[^"]*" "?(.*?)"?$')


@pytest.fixture(scope="session")
def quota_target():
    binary = require_binary("dovecot", "dovecot-imapd")
    root = Path(tempfile.mkdtemp(prefix="mailferry-quota-"))
    root.chmod(0o711)
    server = start_dovecot(
        root / "t", "t", ".", "fs", "UTC", TARGET_MAX_MESSAGE, binary, quota=TARGET_QUOTA
    )
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@dataclass(frozen=True)
class Counted:
    """One folder as the server reports it through imaplib."""

    items: int
    size: int
    oldest: datetime | None
    newest: datetime | None
    largest: int


def count_on_server(server: DovecotServer, user: str, password: str) -> dict[str, Counted]:
    """Every selectable folder: STATUS MESSAGES and one FETCH of RFC822.SIZE and INTERNALDATE,
    with plain imaplib (not our connector)."""
    client = server.client(user, password)
    try:
        _, listing = client.list()
        found = {}
        for line in listing:
            if b"\\Noselect" in line or b"\\NonExistent" in line:
                continue
            name = _NAME.search(line.decode()).group(1)
            _, (count,) = client.select(f'"{name}"', readonly=True)
            sizes, dates = [], []
            if int(count):
                _, data = client.fetch("1:*", "(RFC822.SIZE INTERNALDATE)")
                for part in data:
                    sizes.append(int(_SIZE.search(part).group(1)))
                    when = imaplib.Internaldate2tuple(
                        b'INTERNALDATE "' + _DATE.search(part).group(1) + b'"'
                    )
                    dates.append(datetime.fromtimestamp(time.mktime(when), UTC))
            found[name] = Counted(
                int(count),
                sum(sizes),
                min(dates, default=None),
                max(dates, default=None),
                max(sizes, default=0),
            )
        return found
    finally:
        client.logout()


def write_bulk_folder(server: DovecotServer, user: str, folder: str, count: int) -> None:
    """``count`` small messages written straight into the user's Maildir++ folder on disk (far
    faster than APPEND); each file's mtime is its INTERNALDATE, one minute apart."""
    home = server.maildir(user)
    directory = home / f".{folder}"
    for sub in ("cur", "new", "tmp"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    (directory / "maildirfolder").touch()
    start = datetime(2015, 1, 1, tzinfo=UTC).timestamp()
    stamp = uuid.uuid4().hex[:8]
    for i in range(count):
        path = directory / "cur" / f"{int(start) + i}.M{i}P1.{stamp}:2,S"
        path.write_bytes(message(f"Bulk {i}", f"bulk body {i} {stamp}"))
        os.utime(path, (start + 60 * i, start + 60 * i))
    owner = home.stat()
    for root, _dirs, files in os.walk(directory):
        os.chown(root, owner.st_uid, owner.st_gid)
        for name in files:
            os.chown(os.path.join(root, name), owner.st_uid, owner.st_gid)


@dataclass
class Scene:
    project: Project
    mailboxes: list[Mailbox]
    source: DovecotServer
    target: DovecotServer
    accounts: dict  # source address -> (source user, password)


def big_message(tag: str, size: int) -> bytes:
    return message(f"Big {tag}", ("x" * 998 + "\r\n") * (size // 1000 + 1))


@pytest.fixture
def scene(dovecot_a, quota_target, dovecot_user, db) -> Scene:
    """Three mailboxes, each with its own login on both sides:

    - ann: the corpus in INBOX and a few hard cases in Sent (fits, no problem);
    - ben: INBOX with three messages and "Bulk" with 20,000 items (> the target's 2 MB quota);
    - cid: a 300,000-byte message (over the target's 200,000-byte limit) among small ones."""
    when = datetime(2021, 6, 1, 12, tzinfo=UTC)
    source_users = {tag: dovecot_user(dovecot_a) for tag in ("ann", "ben", "cid")}
    ann, ben, cid = source_users["ann"], source_users["ben"], source_users["cid"]
    ann.load("INBOX", corpus_messages()[:12])
    ann.load(
        "Sent", [RawMessage(message(f"Sent {i}", f"s{i}"), frozenset(), when) for i in range(3)]
    )
    ben.load(
        "INBOX",
        [
            RawMessage(message(f"Ben {i}", f"b{i}"), frozenset(), when + timedelta(days=i))
            for i in range(3)
        ],
    )
    write_bulk_folder(dovecot_a, ben.name, "Bulk", BULK_ITEMS)
    cid.load(
        "INBOX",
        [RawMessage(message(f"Cid {i}", f"c{i}"), frozenset(), when) for i in range(4)]
        + [RawMessage(big_message("cid", 300_000), frozenset(), when - timedelta(days=400))],
    )
    source = tenant_for(dovecot_a.endpoint())
    target_endpoint = quota_target.endpoint()
    target = tenant_for(target_endpoint)
    target.options = {"max_item_size": TARGET_MAX_MESSAGE}
    target.save()
    project = Project.objects.create(client_name="Northwind", source=source, target=target)
    mailboxes, accounts = [], {}
    for user in source_users.values():
        target_user, target_password = quota_target.add_user()
        address = f"{user.name}@old.example"
        mailboxes.append(
            project.mailboxes.create(
                source_address=address,
                target_address=f"{target_user}@new.example",
                source_login=user.name,
                source_password=user.password,
                target_login=target_user,
                target_password=target_password,
            )
        )
        accounts[address] = (user.name, user.password)
    return Scene(project, mailboxes, dovecot_a, quota_target, accounts)
