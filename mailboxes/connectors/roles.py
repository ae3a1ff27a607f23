"""The one place that maps folder roles and item kinds between protocols.

A role is what a folder is *for* (inbox, sent, ...); each protocol names it its own way:
IMAP SPECIAL-USE attributes (RFC 6154), EWS distinguished folder ids, Graph well-known names.
"""

from .base import (
    ARCHIVE,
    CALENDAR,
    CALENDAR_ROLE,
    CONTACTS,
    CONTACTS_ROLE,
    DRAFTS,
    INBOX,
    JUNK,
    MAIL,
    NOTES,
    NOTES_ROLE,
    SENT,
    TASKS,
    TASKS_ROLE,
    TRASH,
)

# RFC 6154 SPECIAL-USE attributes.
IMAP_SPECIAL_USE = {
    "\\Sent": SENT,
    "\\Trash": TRASH,
    "\\Drafts": DRAFTS,
    "\\Junk": JUNK,
    "\\Archive": ARCHIVE,
}

# Servers without SPECIAL-USE still use these names; matched case-insensitively on the leaf.
COMMON_FOLDER_NAMES = {
    "inbox": INBOX,
    "sent": SENT,
    "sent items": SENT,
    "sent messages": SENT,
    "sent mail": SENT,
    "trash": TRASH,
    "deleted items": TRASH,
    "deleted messages": TRASH,
    "drafts": DRAFTS,
    "junk": JUNK,
    "junk e-mail": JUNK,
    "junk email": JUNK,
    "spam": JUNK,
    "archive": ARCHIVE,
    "archives": ARCHIVE,
}

# EWS DistinguishedFolderId names (MS-OXWSCORE) and Graph well-known folder names.
EWS_DISTINGUISHED = {
    "inbox": INBOX,
    "sentitems": SENT,
    "deleteditems": TRASH,
    "drafts": DRAFTS,
    "junkemail": JUNK,
    "archive": ARCHIVE,
    "calendar": CALENDAR_ROLE,
    "contacts": CONTACTS_ROLE,
    "tasks": TASKS_ROLE,
    "notes": NOTES_ROLE,
}
ROLE_TO_EWS_DISTINGUISHED = {role: name for name, role in EWS_DISTINGUISHED.items()}

# The default name a target gets for a role when it has no such folder yet.
DEFAULT_ROLE_NAMES = {
    INBOX: "INBOX",
    SENT: "Sent",
    TRASH: "Trash",
    DRAFTS: "Drafts",
    JUNK: "Junk",
    ARCHIVE: "Archive",
    CALENDAR_ROLE: "Calendar",
    CONTACTS_ROLE: "Contacts",
    TASKS_ROLE: "Tasks",
    NOTES_ROLE: "Notes",
}

# EWS/Graph FolderClass (PR_CONTAINER_CLASS) prefix -> item kind. Subclasses such as
# "IPF.Note.OutlookHomepage" or "IPF.Contact.MOC.QuickContacts" keep their parent's kind.
FOLDER_CLASS_KINDS = {
    "IPF.Note": MAIL,
    "IPF.Appointment": CALENDAR,
    "IPF.Contact": CONTACTS,
    "IPF.Task": TASKS,
    "IPF.StickyNote": NOTES,
}
KIND_FOLDER_CLASSES = {kind: cls for cls, kind in FOLDER_CLASS_KINDS.items()}


def kind_for_folder_class(folder_class: str | None) -> str | None:
    """The item kind of an EWS/Graph folder class, None for classes we do not migrate."""
    if not folder_class:
        return MAIL
    for prefix, kind in FOLDER_CLASS_KINDS.items():
        if folder_class == prefix or folder_class.startswith(prefix + "."):
            return kind
    return None


def role_for_imap(attributes, path: tuple[str, ...]) -> str | None:
    """Role of an IMAP folder from its LIST attributes, falling back to well-known names."""
    for attribute in attributes:
        role = IMAP_SPECIAL_USE.get(attribute.title() if attribute.startswith("\\") else attribute)
        if role:
            return role
    if len(path) == 1:
        return COMMON_FOLDER_NAMES.get(path[0].lower())
    return None
