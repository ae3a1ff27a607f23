"""What the Graph copy tests put in a source mailbox: every kind of item, and real corpus mail."""

from datetime import UTC, datetime

from mailboxes.connectors.base import RFC822, Item
from tests.corpus import corpus_files

# (folder, message class, items): every kind, a nested user folder, a folder over 20 items.
SEED = [
    ("inbox", "IPM.Note", 45),
    ("sentitems", "IPM.Note", 3),
    ("calendar", "IPM.Appointment", 4),
    ("contacts", "IPM.Contact", 3),
    ("tasks", "IPM.Task", 2),
    ("notes", "IPM.StickyNote", 2),
]


def seed(mailbox):
    for name, message_class, count in SEED:
        for n in range(count):
            mailbox.add_item(name, message_class, f"{message_class} #{n}".encode(), n % 2 == 0)
    projects = mailbox.add_folder("Projects")
    nested = mailbox.add_folder("2024", "IPF.Note", parent=projects.id)
    mailbox.add_item(nested, "IPM.Note", b"nested", True)
    return {"Projects/2024": nested}


def corpus_items():
    paths = corpus_files("mimekit-messages")[:12]
    paths += corpus_files("cpython-test_email", "msg_*.txt")[:13]
    items = []
    for n, path in enumerate(paths):
        flags = frozenset({"\\Seen"} if n % 3 else set()) | ({"\\Flagged"} if n % 5 == 0 else set())
        received = datetime(2019, 1 + n % 12, 1 + n, 8, n, tzinfo=UTC)
        items.append(Item(f"1:{n + 1}", path.read_bytes(), RFC822, flags, received))
    return items
