"""Messages the copy tests load: generated hard cases (the corpus itself is tests/corpus.py)."""

from datetime import datetime, timedelta, timezone

from tests.servers.dovecot import RawMessage


def message(subject: str, body: str, message_id: str | None = None, date: str = "") -> bytes:
    headers = [
        "From: Ann <ann@example.org>",
        "To: Bob <bob@example.org>",
        f"Subject: {subject}",
        f"Date: {date or 'Tue, 04 Mar 2014 10:00:00 +0100'}",
    ]
    if message_id:
        headers.append(f"Message-ID: <{message_id}>")
    return ("\r\n".join(headers) + "\r\n\r\n" + body + "\r\n").encode()


def bulk(count: int, owner: str = "bulk") -> list[RawMessage]:
    """``count`` small distinct messages; ``owner`` in every subject and id tells whose they are."""
    return [
        RawMessage(message(f"{owner} {i}", f"line {i}\r\n" * 40, f"{owner}{i}@example.org"))
        for i in range(count)
    ]


def hard_cases() -> list[RawMessage]:
    """No Message-ID, one Message-ID on different bodies, byte-identical twins, keywords,
    INTERNALDATEs in several zones."""
    twin = message("Twin", "exactly the same bytes", "twin@example.org")
    india = timezone(timedelta(hours=5, minutes=30))
    pacific = timezone(timedelta(hours=-8))
    return [
        RawMessage(message("No id", "no Message-ID header at all"), frozenset({"\\Seen"})),
        RawMessage(message("Shared 1", "first body", "shared@example.org")),
        RawMessage(message("Shared 2", "second body", "shared@example.org"), frozenset({"\\Seen"})),
        RawMessage(twin, frozenset({"\\Flagged"})),
        RawMessage(twin, frozenset({"\\Flagged"})),
        RawMessage(
            message("Keywords", "forwarded and labelled", "kw@example.org"),
            frozenset({"$Forwarded", "$Label1", "custom_kw", "\\Seen"}),
        ),
        RawMessage(
            message("Zone", "sent from India", "ist@example.org"),
            frozenset(),
            datetime(2016, 7, 1, 23, 45, 12, tzinfo=india),
        ),
        RawMessage(
            message("Zone", "sent from California", "pst@example.org"),
            frozenset({"\\Answered"}),
            datetime(2012, 2, 29, 1, 2, 3, tzinfo=pacific),
        ),
        RawMessage(message("Draft", "half written", "draft@example.org"), frozenset({"\\Draft"})),
    ]
