"""Helpers for the command tests: run a command as a shell would, read a mailbox back over
IMAP with plain imaplib (not our connector), and make messages no other mailbox has."""

import io
import re
import uuid
from dataclasses import dataclass

from django.core.management import CommandError, call_command

from tests.engine.messages import message
from tests.servers.dovecot import RawMessage


@dataclass
class Run:
    out: str
    err: str
    code: int  # the exit status a shell would see
    message: str = ""  # the CommandError's message (printed on stderr by manage.py)


def run(name: str, *args) -> Run:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command(name, *[str(a) for a in args], stdout=out, stderr=err)
    except CommandError as exc:
        return Run(out.getvalue(), err.getvalue(), exc.returncode, str(exc))
    return Run(out.getvalue(), err.getvalue(), 0)


def unique_messages(tag: str, count: int) -> list[RawMessage]:
    """``count`` messages whose bytes name ``tag``: no other mailbox's can be mistaken for them."""
    stamp = uuid.uuid4().hex[:8]
    return [
        RawMessage(
            message(f"{tag} {i}", f"{tag} body {i} {stamp}\r\n" * (i + 1), f"{tag}.{i}.{stamp}@x")
        )
        for i in range(count)
    ]


_NAME = re.compile(rb'\) "[^"]*" "?(.*?)"?$')


def held_messages(server, user: str, password: str) -> dict[str, list[bytes]]:
    """Every non-empty folder of an account: folder -> the sorted bytes of its messages."""
    client = server.client(user, password)
    try:
        _, listing = client.list()
        folders = {}
        for line in listing:
            name = _NAME.search(line).group(1).decode()
            typ, data = client.select(f'"{name}"', readonly=True)
            if typ != "OK" or not int(data[0]):
                continue
            _, data = client.fetch("1:*", "(BODY.PEEK[])")
            folders[name] = sorted(part[1] for part in data if isinstance(part, tuple))
        return folders
    finally:
        client.logout()


def all_bytes(folders: dict[str, list[bytes]]) -> list[bytes]:
    return sorted(data for items in folders.values() for data in items)


def imap_url(server, credentials="", query=""):
    return f"imap://{credentials}127.0.0.1:{server.port}{query}"


def create_project(source_url, target_url, name="Contoso"):
    created = run("create_project", name, "--source", source_url, "--target", target_url)
    assert created.code == 0, created.message
    assert re.fullmatch(r"\d+\n", created.out)
    return int(created.out)


def import_csv(tmp_path, project_id, lines):
    path = tmp_path / f"users-{uuid.uuid4().hex[:6]}.csv"
    header = "Source Address,Target Address,Display Name,Source Login,Source Password,"
    header += "Target-Login,Target-Password\n"
    path.write_text(header + "".join(",".join(line) + "\n" for line in lines))
    return run("import_mailboxes", project_id, path)


def account(server, name=None):
    """(address, login, password) of a fresh account; the address differs from the login."""
    login, password = server.add_user(name)
    return f"{login}@example.org" if name is None else login, login, password
