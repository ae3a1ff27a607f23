"""Requests Exchange refuses, sent straight to the EWS test server: it must refuse them the way
Exchange does, so that a connector change that starts sending one fails its copy tests too.

Three mailboxes, each with its own password and its own mail, and an admin account that holds
ApplicationImpersonation."""

import base64
import random
import struct

import pytest
import requests
from lxml import etree

from mailboxes.connectors.base import AuthError, Endpoint
from mailboxes.connectors.ews import EWS_FTS, EwsConnector, ExportedItem
from tests.corpus import corpus_mime
from tests.servers.ews_server import SOAP, M, T, start_ews_server

ANN, BEN, CAT, ADMIN = "ann@corp.test", "ben@corp.test", "cat@corp.test", "admin@corp.test"
PASSWORDS = {ANN: "pw-ann", BEN: "pw-ben", CAT: "pw-cat", ADMIN: "pw-admin"}
NS = {"s": SOAP, "m": M, "t": T}


@pytest.fixture
def server():
    server = start_ews_server()
    for address, password in PASSWORDS.items():
        server.add_user(address, password, impersonation=address == ADMIN)
    mail = iter(corpus_mime(9))
    for address, count in ((ANN, 2), (BEN, 3), (CAT, 4)):
        for _ in range(count):
            server.add_item(server.folder(address, "Inbox"), next(mail))
    yield server
    server.stop()


def post(server, login: str, body: str, impersonate: str = ""):
    """One SOAP request as ``login``; the HTTP status and the parsed answer."""
    header = '<t:RequestServerVersion Version="Exchange2016"/>'
    if impersonate:
        header += (
            "<t:ExchangeImpersonation><t:ConnectingSID><t:PrimarySmtpAddress>"
            f"{impersonate}</t:PrimarySmtpAddress></t:ConnectingSID></t:ExchangeImpersonation>"
        )
    envelope = (
        f'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{SOAP}" xmlns:m="{M}" '
        f'xmlns:t="{T}"><s:Header>{header}</s:Header><s:Body>{body}</s:Body></s:Envelope>'
    )
    response = requests.post(
        server.url,
        data=envelope.encode(),
        auth=(login, PASSWORDS[login]),
        headers={"Content-Type": "text/xml; charset=utf-8"},
        timeout=10,
    )
    return response.status_code, etree.fromstring(response.content)


def answers(tree) -> list[tuple[str, str]]:
    """(ResponseClass, ResponseCode) of every response message, in order."""
    messages = tree.find("s:Body", NS)[0].find("m:ResponseMessages", NS)
    return [(m.get("ResponseClass"), m.findtext("m:ResponseCode", namespaces=NS)) for m in messages]


def fault(tree) -> tuple[str, str]:
    """A SOAP fault's code and the schema violation it names (empty for other faults)."""
    node = tree.find("s:Body/s:Fault", NS)
    return node.findtext("faultcode"), node.findtext("detail/t:MessageXml/t:Violation", "", NS)


def mailbox_ref(address: str) -> str:
    return (
        f"<t:Mailbox><t:EmailAddress>{address}</t:EmailAddress>"
        "<t:RoutingType>SMTP</t:RoutingType></t:Mailbox>"
    )


def inbox_of(address: str) -> str:
    return f'<t:DistinguishedFolderId Id="inbox">{mailbox_ref(address)}</t:DistinguishedFolderId>'


def find_items(address: str) -> str:
    return (
        '<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape>'
        f"</m:ItemShape><m:ParentFolderIds>{inbox_of(address)}</m:ParentFolderIds></m:FindItem>"
    )


def upload(server, address: str, data: str, create_action=' CreateAction="CreateNew"') -> str:
    folder = server.folder(address, "Inbox").id
    return (
        f'<m:UploadItems><m:Items><t:Item{create_action}><t:ParentFolderId Id="{folder}"/>'
        f"<t:Data>{data}</t:Data></t:Item></m:Items></m:UploadItems>"
    )


def export(item_id: str) -> str:
    return f'<m:ExportItems><m:ItemIds><t:ItemId Id="{item_id}"/></m:ItemIds></m:ExportItems>'


def sync_items(address: str, max_changes: str | None) -> str:
    limit = (
        "" if max_changes is None else f"<m:MaxChangesReturned>{max_changes}</m:MaxChangesReturned>"
    )
    return (
        "<m:SyncFolderItems><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>"
        f"<m:SyncFolderId>{inbox_of(address)}</m:SyncFolderId>{limit}</m:SyncFolderItems>"
    )


def held(server, address: str) -> int:
    return len(server.items_in(server.folder(address, "Inbox")))


def fast_transfer_stream(seed: int) -> bytes:
    """An item the way MS-OXCFXICS serialises it: little-endian property tags and values, UTF-16
    strings, a FILETIME and a compressed-RTF body of binary noise: nothing a text or JSON parser
    could read, as a real ExportItems blob looks to any server but Exchange."""

    def prop(tag: int, value: bytes) -> bytes:
        return struct.pack("<I", tag) + value

    def variable(tag: int, value: bytes) -> bytes:
        return prop(tag, struct.pack("<I", len(value)) + value)

    noise = random.Random(seed).randbytes(80_000)
    return b"".join(
        [
            struct.pack("<II", 1, 8) + bytes(8),
            variable(0x001A001F, "IPM.Note\0".encode("utf-16-le")),  # PidTagMessageClass
            variable(0x0037001F, f"Quarterly figures {seed}\0".encode("utf-16-le")),  # Subject
            prop(0x0E070003, struct.pack("<I", 1)),  # PidTagMessageFlags: read
            prop(0x0E060040, struct.pack("<Q", 133_000_000_000_000_000 + seed)),  # delivery time
            variable(0x10090102, noise),  # PidTagRtfCompressed
        ]
    )


class TestSchemaValidation:
    def test_create_item_of_a_message_needs_a_message_disposition(self, server):
        mime = base64.b64encode(corpus_mime(10)[9]).decode()

        def create(disposition: str) -> str:
            return (
                f"<m:CreateItem{disposition}><m:SavedItemFolderId>{inbox_of(ANN)}"
                "</m:SavedItemFolderId><m:Items><t:Message>"
                f"<t:MimeContent>{mime}</t:MimeContent></t:Message></m:Items></m:CreateItem>"
            )

        refused = post(server, ANN, create(""))
        saved = post(server, ANN, create(' MessageDisposition="SaveOnly"'))

        assert refused[0] == 200
        assert answers(refused[1]) == [("Error", "ErrorMessageDispositionRequired")]
        assert answers(saved[1]) == [("Success", "NoError")]
        assert held(server, ANN) == 3  # two of her own, one saved

    def test_upload_items_without_create_action_fails_schema_validation(self, server):
        data = base64.b64encode(fast_transfer_stream(1)).decode()

        status, tree = post(server, BEN, upload(server, BEN, data, create_action=""))

        assert status == 500
        assert fault(tree) == (
            "a:ErrorSchemaValidation",
            "The required attribute 'CreateAction' is missing.",
        )
        assert held(server, BEN) == 3
        assert answers(post(server, BEN, upload(server, BEN, data))[1]) == [("Success", "NoError")]
        assert held(server, BEN) == 4

    @pytest.mark.parametrize(
        ("max_changes", "violation"),
        [
            ("100000", "The MaxInclusive constraint failed."),
            ("513", "The MaxInclusive constraint failed."),
            ("0", "The MinInclusive constraint failed."),
            ("many", "is not a valid Int32 value."),
            (None, "List of possible elements expected: 'MaxChangesReturned'"),
        ],
    )
    def test_sync_folder_items_takes_1_to_512_changes(self, server, max_changes, violation):
        status, tree = post(server, CAT, sync_items(CAT, max_changes))

        assert status == 500
        code, said = fault(tree)
        assert code == "a:ErrorSchemaValidation" and violation in said
        assert server.requests["SyncFolderItems"] == 1

    def test_sync_folder_items_at_512_lists_the_folder(self, server):
        status, tree = post(server, CAT, sync_items(CAT, "512"))

        assert status == 200 and answers(tree) == [("Success", "NoError")]
        assert len(tree.findall(".//t:Create", NS)) == held(server, CAT) == 4

    def test_malformed_base64_data_fails_schema_validation(self, server):
        status, tree = post(server, ANN, upload(server, ANN, "AQAAAAgAAAAA*not-base64*"))

        assert status == 500
        code, violation = fault(tree)
        assert code == "a:ErrorSchemaValidation" and "base64Binary" in violation
        assert held(server, ANN) == 2

    def test_xml_that_is_not_well_formed_fails_schema_validation(self, server):
        status, tree = post(server, ANN, "<m:GetFolder><m:FolderShape></m:GetFolder>")

        assert status == 500
        code, violation = fault(tree)
        assert code == "a:ErrorSchemaValidation" and "mismatch" in violation
        assert server.requests == {}  # refused before any operation ran


class TestFastTransferBlobs:
    def test_a_real_stream_is_stored_and_exported_byte_for_byte(self, server):
        stream = fast_transfer_stream(2)
        encoded = base64.b64encode(stream).decode()
        # Line-wrapped, as in Microsoft's own UploadItems example: xs:base64Binary allows it.
        wrapped = "\n".join(encoded[n : n + 54] for n in range(0, len(encoded), 54))

        status, tree = post(server, BEN, upload(server, BEN, wrapped))

        assert status == 200 and answers(tree) == [("Success", "NoError")]
        item_id = tree.find(".//m:ItemId", NS).get("Id")
        status, tree = post(server, BEN, export(item_id))
        assert answers(tree) == [("Success", "NoError")]
        assert base64.b64decode(tree.findtext(".//m:Data", namespaces=NS)) == stream
        assert server.items[item_id].size == len(stream)

    def test_the_connector_carries_a_stream_it_cannot_read_unchanged(self, server):
        streams = [fast_transfer_stream(seed) for seed in (3, 4, 5)]
        with EwsConnector(endpoint(server, CAT), CAT) as connector:
            inbox = next(f for f in connector.folders() if f.role == "inbox")
            items = [
                ExportedItem(f"src-{n}", data, format=EWS_FTS) for n, data in enumerate(streams)
            ]

            stored = connector.store(inbox, items)
            back = connector.fetch(inbox, [r.target_id for r in stored], format=EWS_FTS)

        assert [i.data for i in back] == streams
        assert held(server, CAT) == 4 + 3


def endpoint(server, login: str) -> Endpoint:
    return Endpoint(kind="ews", host=server.url, username=login, secret=PASSWORDS[login])


REFERENCES = {
    "distinguished folder with a Mailbox": lambda server: (
        "<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape>"
        f"<m:FolderIds>{inbox_of(BEN)}</m:FolderIds></m:GetFolder>"
    ),
    "folder id": lambda server: (
        "<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape>"
        f'<m:FolderIds><t:FolderId Id="{server.folder(BEN, "Inbox").id}"/></m:FolderIds>'
        "</m:GetFolder>"
    ),
    "items of a folder": lambda server: find_items(BEN),
    "item id": lambda server: (
        "<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:ItemIds>"
        f'<t:ItemId Id="{server.items_in(server.folder(BEN, "Inbox"))[0].id}"/>'
        "</m:ItemIds></m:GetItem>"
    ),
    "export": lambda server: export(server.items_in(server.folder(BEN, "Inbox"))[0].id),
    "upload into a folder": lambda server: upload(
        server, BEN, base64.b64encode(fast_transfer_stream(6)).decode()
    ),
}


class TestPermissions:
    @pytest.mark.parametrize("reference", REFERENCES)
    def test_another_mailbox_is_access_denied_and_its_owner_gets_in(self, server, reference):
        body = REFERENCES[reference](server)

        status, tree = post(server, ANN, body)

        assert status == 200 and answers(tree) == [("Error", "ErrorAccessDenied")]
        assert held(server, BEN) == 3
        assert answers(post(server, BEN, body)[1]) == [("Success", "NoError")]

    def test_impersonation_without_the_right_is_denied(self, server):
        status, tree = post(server, ANN, find_items(BEN), impersonate=BEN)

        assert status == 500
        assert fault(tree)[0] == "a:ErrorImpersonateUserDenied"

    def test_impersonation_with_the_right_acts_as_that_user_only(self, server):
        status, tree = post(server, ADMIN, find_items(BEN), impersonate=BEN)
        assert answers(tree) == [("Success", "NoError")]
        assert len(tree.findall(".//t:Message", NS)) == held(server, BEN) == 3

        # Acting as Ben gives Ben's rights, not the admin's: Cat's inbox stays closed.
        _, tree = post(server, ADMIN, find_items(CAT), impersonate=BEN)
        assert answers(tree) == [("Error", "ErrorAccessDenied")]

    def test_full_access_opens_that_mailbox_and_no_other(self, server):
        server.grant_full_access(CAT, ANN)

        _, granted = post(server, ANN, find_items(CAT))
        _, other = post(server, ANN, find_items(BEN))

        assert answers(granted) == [("Success", "NoError")]
        assert len(granted.findall(".//t:Message", NS)) == held(server, CAT) == 4
        assert answers(other) == [("Error", "ErrorAccessDenied")]

    def test_the_connector_names_a_login_without_rights_and_works_once_granted(self, server):
        with pytest.raises(AuthError, match=f"{ANN} may not open {BEN}"):
            EwsConnector(endpoint(server, ANN), BEN).check()

        server.grant_full_access(BEN, ANN)
        with EwsConnector(endpoint(server, ANN), BEN) as connector:
            inbox = next(f for f in connector.folders() if f.role == "inbox")

        assert inbox.count == held(server, BEN) == 3
