"""The shared corpus of real messages, found beside the checkout (``../shared/corpus``) wherever
the checkout is cloned. A missing or empty corpus fails the test that asks for it, naming the
path: copy tests that ran on no mail would pass while proving nothing."""

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.servers.dovecot import RawMessage

CORPUS_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"


def corpus_files(subdir: str = "", pattern: str = "*") -> list[Path]:
    """The corpus files under ``subdir`` matching ``pattern`` (recursively), licences and
    read-mes left out, sorted; fails the test when there are none."""
    where = CORPUS_DIR / subdir
    files = sorted(
        path
        for path in where.rglob(pattern)
        if path.is_file() and not path.name.startswith(("LICENSE", "README"))
    )
    if not files:
        pytest.fail(
            f"the shared corpus is missing or empty: no {pattern!r} file under {where} "
            f"(expected ../shared/corpus beside the checkout)",
            pytrace=False,
        )
    return files


def crlf(data: bytes) -> bytes:
    """Bare LF line ends made CRLF, as IMAP and EWS carry messages."""
    return re.sub(rb"(?<!\r)\n", b"\r\n", data)


def corpus_mime(count: int) -> list[bytes]:
    """The first ``count`` cpython test messages with CRLF line ends."""
    messages = [crlf(p.read_bytes()) for p in corpus_files("cpython-test_email", "msg_*.txt")]
    if len(messages) < count:
        pytest.fail(f"{CORPUS_DIR} holds {len(messages)} of the {count} messages asked for")
    return messages[:count]


def corpus_split() -> list[tuple[str, bytes]]:
    """Every corpus message with CRLF line ends, each mbox split into its messages, named."""
    messages = []
    for path in corpus_files():
        data = path.read_bytes()
        if path.suffix == ".mbox":
            parts = re.split(rb"^From [^\n]*\n", data, flags=re.MULTILINE)[1:]
            messages += [(f"{path.name}#{i}", crlf(part)) for i, part in enumerate(parts, 1)]
        else:
            messages.append((path.name, crlf(data)))
    return messages


def corpus_messages() -> list[RawMessage]:
    """Every corpus file as one message, bytes untouched, with a spread of flags and dates."""
    flag_sets = [set(), {"\\Seen"}, {"\\Seen", "\\Answered"}, {"\\Flagged", "$Forwarded"}]
    start = datetime(2009, 3, 1, 8, 30, tzinfo=UTC)
    return [
        RawMessage(
            path.read_bytes(),
            frozenset(flag_sets[i % len(flag_sets)]),
            start + timedelta(days=41 * i, minutes=i),
        )
        for i, path in enumerate(corpus_files())
    ]
