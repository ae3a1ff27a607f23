"""Three Gmail mailboxes of real corpus messages with several labels each, and what a target
must hold for them under the default labels strategy (README, "Google Workspace")."""

from collections import defaultdict
from datetime import UTC, datetime, timedelta

from mailboxes.connectors.base import ARCHIVE, DRAFTS, INBOX, JUNK, SENT, TRASH
from tests.corpus import corpus_split

USERS = ("ann@fabrikam.example", "bo@fabrikam.example", "cy@fabrikam.example")
# Label sets cycled over each mailbox's messages: system and user labels, nested user labels,
# read/starred state, and messages only IMPORTANT/CATEGORY_* (they belong in All Mail).
LABEL_SETS = (
    ("INBOX", "Work", "UNREAD"),
    ("INBOX", "Work/Projects", "STARRED", "IMPORTANT"),
    ("SENT", "Travel"),
    ("IMPORTANT", "CATEGORY_UPDATES"),
    ("Travel", "Work/Projects", "UNREAD", "STARRED"),
    ("TRASH", "Work"),
    ("SPAM",),
    ("DRAFT", "Travel"),
    ("INBOX", "CATEGORY_SOCIAL", "Family & Friends/2019"),
)
ROLES = {"INBOX": INBOX, "SENT": SENT, "SPAM": JUNK, "TRASH": TRASH, "DRAFT": DRAFTS}
NOT_FOLDERS = {"UNREAD", "STARRED", "IMPORTANT"}
START = datetime(2019, 4, 1, 9, 0, tzinfo=UTC)


def seed(server, per_user: int = 18) -> dict:
    """user -> its Mailbox; each user gets its own corpus messages (none shared)."""
    messages = [data for _, data in corpus_split()]
    assert len(messages) >= per_user * len(USERS), "the corpus is too small for three mailboxes"
    boxes = {}
    for u, user in enumerate(USERS):
        box = server.add_user(user)
        for n, data in enumerate(messages[u::3][:per_user]):
            received = START + timedelta(days=n, hours=u, minutes=n)
            box.add_message(data, LABEL_SETS[n % len(LABEL_SETS)], int(received.timestamp()) * 1000)
        boxes[user] = box
    return boxes


def place(box, labels) -> set:
    """Folder keys (a role, or a user label's path) a message with ``labels`` is placed in."""
    keys = set()
    for label_id in labels:
        label = box.labels[label_id]
        if label_id in ROLES:
            keys.add(ROLES[label_id])
        elif label["type"] == "user":
            keys.add(tuple(label["name"].split("/")))
    return keys or {ARCHIVE}


def one_folder(box, labels) -> tuple[object, frozenset]:
    """one_folder: (the one folder key, the other user labels as keywords)."""
    users = sorted(
        (lid for lid in labels if box.labels[lid]["type"] == "user"),
        key=lambda lid: box.labels[lid]["name"].lower(),
    )
    order = [lid for lid in ("TRASH", "SPAM", "DRAFT", "SENT", "INBOX") if lid in labels] + users
    if not order:
        return ARCHIVE, frozenset(box.labels[lid]["name"] for lid in users)
    first = order[0]
    key = ROLES.get(first) or tuple(box.labels[first]["name"].split("/"))
    others = frozenset(box.labels[lid]["name"].replace(" ", "_") for lid in users if lid != first)
    return key, others


def flags(labels) -> frozenset:
    found = set() if "UNREAD" in labels else {"\\Seen"}
    if "STARRED" in labels:
        found.add("\\Flagged")
    if "DRAFT" in labels:
        found.add("\\Draft")
    return frozenset(found)


def expected(box, strategy: str = "every_folder") -> dict:
    """key -> sorted (bytes, flags, received) of every message the box places there now."""
    held = defaultdict(list)
    for message in box.messages.values():
        received = datetime.fromtimestamp(message.internal_date / 1000, UTC)
        if strategy == "one_folder":
            key, keywords = one_folder(box, message.labels)
            held[key].append((message.raw, flags(message.labels) | keywords, received))
            continue
        for key in place(box, message.labels):
            held[key].append((message.raw, flags(message.labels), received))
    return {key: sorted(items, key=_order) for key, items in held.items()}


def holdings(connector) -> dict:
    """key -> sorted (bytes, flags, received) of what a target mailbox holds, read through its
    own connector; a folder with a role is keyed by the role, any other by its path."""
    held = {}
    for folder in connector.folders():
        refs = connector.changes(folder, {}).items
        if not refs:
            continue
        items = connector.fetch(folder, [ref.source_id for ref in refs])
        flagged = [(i.data, frozenset(i.flags) - {"\\Recent"}, i.received) for i in items]
        held[folder.role or folder.path] = sorted(flagged, key=_order)
    return held


def _order(entry):
    return entry[0], sorted(entry[1]), entry[2]
