"""Requests Microsoft Graph refuses, sent straight to the test server: each must get Graph's
refusal (status and error body), so a connector change that starts sending one fails here and in
the copy tests instead of in a client's tenant."""

import base64
import json
import ssl

import httpx
import pytest

from tests.servers.graph_server import JSON_UNREADABLE

# Each Graph request takes its turn in the mailbox budget, kept in the database here.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def ann(graph_server):
    box = graph_server.add_user("ann@example.org")
    for n in range(3):
        box.add_item("inbox", "IPM.Note", f"message {n}".encode())
    box.add_item("calendar", "IPM.Appointment", b"BEGIN:VEVENT\r\nEND:VEVENT\r\n")
    return box


@pytest.fixture
def graph(graph_server, ann, connect):
    """An HTTP client on the test server and a valid token, as the connector would hold."""
    token = connect("ann@example.org")._token()
    context = ssl.create_default_context(cafile=graph_server.cert_file)
    with httpx.Client(base_url=graph_server.graph_url, verify=context) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        yield client


def refusal(response, status, code, message=None):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert set(error["innerError"]) >= {"date", "request-id"}
    if message is not None:
        assert error["message"] == message


def test_a_mailbox_item_cannot_be_patched(graph, ann):
    """mailboxItem documents List, Get and delta only."""
    inbox = ann.folder("inbox")
    item_id = next(iter(inbox.items))
    properties = dict(inbox.items[item_id].properties)
    url = f"/admin/exchange/mailboxes/{ann.id}/folders/{inbox.id}/items/{item_id}"
    body = {"singleValueExtendedProperties": [{"id": "String 0x001A", "value": "x"}]}

    refusal(graph.patch(url, json=body), 405, "Request_BadRequest")
    refusal(graph.delete(url), 405, "Request_BadRequest")
    assert graph.get(url).json()["id"] == item_id
    assert inbox.items[item_id].properties == properties


def test_export_items_must_be_sent_as_json(graph, ann):
    ids = list(ann.folder("inbox").items)
    url = f"/admin/exchange/mailboxes/{ann.id}/exportItems"

    as_text = graph.post(
        url, content=json.dumps({"itemIds": ids}), headers={"Content-Type": "text/plain"}
    )

    refusal(as_text, 400, "BadRequest", JSON_UNREADABLE)
    assert len(graph.post(url, json={"itemIds": ids}).json()["value"]) == 3


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("exportItems", b'{"itemIds": ["AAMk'),
        ("exportItems", b"\xff\xfe not even text"),
        ("folders", b"[1, 2]"),
        ("folders", b""),
    ],
)
def test_a_malformed_json_body_gets_400_and_the_connection_lives_on(graph, ann, path, body):
    url = f"/admin/exchange/mailboxes/{ann.id}/{path}"

    response = graph.post(url, content=body, headers={"Content-Type": "application/json"})

    refusal(response, 400, "BadRequest", JSON_UNREADABLE)
    # The same keep-alive connection still answers.
    assert graph.get("/users/ann@example.org/settings/exchange").status_code == 200


def test_a_batch_with_duplicate_ids_is_refused_whole(graph, ann):
    item_id = next(iter(ann.folder("inbox").items))
    get = {"method": "GET", "url": f"/users/ann@example.org/messages/{item_id}"}

    refusal(
        graph.post("/$batch", json={"requests": [{**get, "id": "1"}, {**get, "id": "1"}]}),
        400,
        "BadRequest",
    )
    # Ids compare case-insensitively.
    refusal(
        graph.post("/$batch", json={"requests": [{**get, "id": "a"}, {**get, "id": "A"}]}),
        400,
        "BadRequest",
    )
    answered = graph.post("/$batch", json={"requests": [{**get, "id": "1"}, {**get, "id": "2"}]})
    assert [r["status"] for r in answered.json()["responses"]] == [200, 200]


def test_a_batch_request_with_a_body_needs_its_content_type(graph, ann):
    item_id = next(iter(ann.folder("inbox").items))
    patch = {
        "id": "1",
        "method": "PATCH",
        "url": f"/users/ann@example.org/messages/{item_id}",
        "body": {"isRead": True},
    }

    refusal(graph.post("/$batch", json={"requests": [patch]}), 400, "BadRequest")
    assert ann.folder("inbox").items[item_id].is_read is False
    typed = {**patch, "headers": {"content-type": "application/json"}}
    assert graph.post("/$batch", json={"requests": [typed]}).json()["responses"][0]["status"] == 200
    assert ann.folder("inbox").items[item_id].is_read is True


def test_a_batch_must_itself_be_json(graph):
    body = json.dumps({"requests": [{"id": "1", "method": "GET", "url": "/users/x"}]})

    refusal(
        graph.post("/$batch", content=body, headers={"Content-Type": "text/plain"}),
        400,
        "BadRequest",
        JSON_UNREADABLE,
    )


def test_import_mime_takes_text_plain_only(graph, ann, graph_server):
    mime = base64.b64encode(b"Subject: hello\r\n\r\nbody\r\n").decode()
    url = "/users/ann@example.org/mailFolders/inbox/importMime"
    before = len(ann.folder("inbox").items)

    refusal(graph.post(url, json={"mime": mime}), 415, "UnsupportedMediaType")
    batched = graph.post(
        "/$batch",
        json={
            "requests": [
                {
                    "id": "1",
                    "method": "POST",
                    "url": url,
                    "headers": {"Content-Type": "application/json"},
                    "body": {"mime": mime},
                }
            ]
        },
    )
    assert batched.json()["responses"][0]["status"] == 415
    assert len(ann.folder("inbox").items) == before
    created = graph.post(url, content=mime, headers={"Content-Type": "text/plain"})
    assert created.status_code == 201 and created.json()["isDraft"] is False


def test_import_item_refuses_json_it_cannot_read(graph_server, graph, ann):
    session = graph.post(f"/admin/exchange/mailboxes/{ann.id}/createImportSession").json()
    folder = ann.folder("inbox").id
    before = len(ann.folder("inbox").items)
    # The importUrl is pre-authenticated: a client without the Authorization header.
    context = ssl.create_default_context(cafile=graph_server.cert_file)
    with httpx.Client(verify=context) as client:
        refusal(
            client.post(
                session["importUrl"],
                content=b'{"FolderId": ',
                headers={"Content-Type": "application/json"},
            ),
            400,
            "BadRequest",
        )
        refusal(
            client.post(
                session["importUrl"],
                json={"FolderId": folder, "Mode": "create", "Data": "not base64!"},
            ),
            400,
            "ErrorInvalidArgument",
        )
        sent_as_text = client.post(
            session["importUrl"],
            content=json.dumps({"FolderId": folder, "Mode": "create", "Data": "AAAA"}),
            headers={"Content-Type": "text/plain"},
        )
        refusal(sent_as_text, 400, "BadRequest", JSON_UNREADABLE)
    assert len(ann.folder("inbox").items) == before


def test_an_expired_token_gets_401_with_graphs_words(graph_server, graph, ann):
    graph_server.expire_tokens()

    response = graph.get(f"/admin/exchange/mailboxes/{ann.id}/folders/delta")

    refusal(
        response,
        401,
        "InvalidAuthenticationToken",
        "Lifetime validation failed, the token is expired.",
    )


def test_each_user_collection_holds_only_its_own_kind(graph, ann):
    event_id = next(iter(ann.folder("calendar").items))
    message_id = next(iter(ann.folder("inbox").items))
    stamp = {"singleValueExtendedProperties": [{"id": "String 0x001A", "value": "x"}]}

    refusal(graph.get(f"/users/ann@example.org/messages/{event_id}"), 404, "ErrorItemNotFound")
    refusal(
        graph.patch(f"/users/ann@example.org/contacts/{event_id}", json=stamp),
        404,
        "ErrorItemNotFound",
    )
    refusal(
        graph.patch(f"/users/ann@example.org/events/{message_id}", json=stamp),
        404,
        "ErrorItemNotFound",
    )
    assert graph.patch(f"/users/ann@example.org/events/{event_id}", json=stamp).status_code == 200
