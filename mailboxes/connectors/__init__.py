"""Protocol connectors behind one interface (see ``base``)."""

from importlib import import_module

from .base import (
    AuthError,
    Changes,
    Connector,
    ConnectorError,
    Endpoint,
    Folder,
    Item,
    ItemRef,
    NoConnector,
    StoreResult,
    TransientError,
)

# kind -> "module:Class"; modules are imported lazily so a missing optional library only
# affects its own kind.
REGISTRY = {
    "imap": "mailboxes.connectors.imap:ImapConnector",
    "maildir": "mailboxes.connectors.maildir:MaildirConnector",
    "ews": "mailboxes.connectors.ews:EwsConnector",
    "exchange_online": "mailboxes.connectors.graph:GraphConnector",
    "google": "mailboxes.connectors.gmail:GmailConnector",
}


def connector_class(kind: str) -> type[Connector]:
    target = REGISTRY.get(kind)
    if target is None:
        raise NoConnector(f"There is no connector for tenant kind {kind!r} yet.")
    module_name, class_name = target.split(":")
    try:
        module = import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise NoConnector(f"There is no connector for tenant kind {kind!r} yet.") from exc
        raise
    return getattr(module, class_name)


def open_connector(endpoint: Endpoint, mailbox: str) -> Connector:
    return connector_class(endpoint.kind)(endpoint, mailbox)


__all__ = [
    "AuthError",
    "Changes",
    "Connector",
    "ConnectorError",
    "Endpoint",
    "Folder",
    "Item",
    "ItemRef",
    "NoConnector",
    "StoreResult",
    "TransientError",
    "connector_class",
    "open_connector",
]
