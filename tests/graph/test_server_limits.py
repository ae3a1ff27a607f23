"""Exchange Online's limits per app and mailbox, enforced by the test server and sent straight to
it: concurrent requests, requests per window and imported bytes per window, each answered
beyond the limit with Graph's 429 body and a Retry-After, per (app, mailbox) and no wider.
Windows are scaled down to a second so the tests run in seconds."""

import base64
import ssl
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.graph.conftest import SECRET
from tests.servers.graph_server import MailboxLimits, make_fts

USERS = ("ann@example.org", "bo@example.org", "cy@example.org")


@pytest.fixture
def boxes(graph_server):
    return {user: graph_server.add_user(user) for user in USERS}


def token(server, client_id) -> str:
    context = ssl.create_default_context(cafile=server.cert_file)
    response = httpx.post(
        f"{server.authority}/oauth2/v2.0/token",
        data={
            "client_id": client_id,
            "client_secret": SECRET,
            "grant_type": "client_credentials",
            "scope": "https://graph.microsoft.com/.default",
        },
        verify=context,
    )
    return response.json()["access_token"]


@pytest.fixture
def client(graph_server, graph_app):
    """client(app) -> an HTTP client holding a token of that app."""
    context = ssl.create_default_context(cafile=graph_server.cert_file)
    opened = []

    def open_for(client_id="mailferry-app"):
        if client_id not in graph_server.apps:
            graph_server.register_app(client_id, SECRET)
        http = httpx.Client(base_url=graph_server.graph_url, verify=context, timeout=30)
        http.headers["Authorization"] = f"Bearer {token(graph_server, client_id)}"
        opened.append(http)
        return http

    yield open_for
    for http in opened:
        http.close()


def folders(http, box):
    return http.get(f"/admin/exchange/mailboxes/{box.id}/folders/delta")


def throttled(response, code, message):
    assert response.status_code == 429, response.text
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"] == message
    return float(response.headers["Retry-After"])


def test_a_fifth_concurrent_request_to_one_mailbox_is_refused(graph_server, boxes, client):
    graph_server.enforce(MailboxLimits(concurrency=4), mailbox_time=1.0)
    http, other_app = client(), client("other-app")
    ann, bo = boxes["ann@example.org"], boxes["bo@example.org"]
    calls = [(http, ann)] * 5 + [(http, bo)] * 4 + [(other_app, ann)] * 4

    with ThreadPoolExecutor(len(calls)) as pool:
        answers = list(pool.map(lambda call: folders(*call), calls))

    refused = [a for a in answers if a.status_code != 200]
    (one,) = refused  # only the fifth to ann by this app; bo and the other app have their own
    message = "Application is over its MailboxConcurrency limit."
    assert throttled(one, "ApplicationThrottled", message) > 0
    uses = graph_server.use
    assert uses[("mailferry-app", ann.id)].max_in_flight == 4
    assert max(use.max_in_flight for use in uses.values()) == 4
    assert graph_server.counts["throttled"] == 1


def test_requests_beyond_the_window_wait_for_its_oldest(graph_server, boxes, client):
    graph_server.enforce(MailboxLimits(requests=5, request_window=1.5))
    http = client()
    ann, bo, cy = (boxes[user] for user in USERS)
    for _ in range(5):
        assert folders(http, ann).status_code == 200

    wait = throttled(folders(http, ann), "TooManyRequests", "Please retry again later.")

    assert 0 < wait <= 1.5
    assert folders(http, bo).status_code == folders(http, cy).status_code == 200
    time.sleep(wait)  # the server's own Retry-After, honoured as a client must
    assert folders(http, ann).status_code == 200
    (use,) = graph_server.mailbox_use("ann@example.org")
    assert (use.served, len(use.throttled)) == (6, 1)


def test_imported_bytes_beyond_the_window_are_refused(graph_server, boxes, client):
    graph_server.enforce(MailboxLimits(bytes=1000, bytes_window=60))
    http = client()
    sessions = {}
    for user in ("ann@example.org", "bo@example.org"):
        box = boxes[user]
        answer = http.post(f"/admin/exchange/mailboxes/{box.id}/createImportSession")
        sessions[user] = (answer.json()["importUrl"], box.folder("inbox").id)

    header = len(make_fts("IPM.Note", b""))

    def upload(user, size):
        """Import an item of ``size`` bytes (the stream, as IncomingBytes counts it)."""
        url, folder_id = sessions[user]
        data = make_fts("IPM.Note", b"x" * (size - header))
        body = {"FolderId": folder_id, "Mode": "create", "Data": base64.b64encode(data).decode()}
        context = ssl.create_default_context(cafile=graph_server.cert_file)
        return httpx.post(url, json=body, verify=context)

    assert upload("ann@example.org", 600).status_code == 200
    over = upload("ann@example.org", 401)
    wait = throttled(over, "ApplicationThrottled", "Application is over its IncomingBytes limit.")
    assert 50 < wait <= 60
    assert upload("ann@example.org", 400).status_code == 200  # exactly the 1,000 bytes
    assert upload("bo@example.org", 600).status_code == 200
    assert len(boxes["ann@example.org"].folder("inbox").items) == 2


def test_a_batch_to_one_mailbox_holds_four_of_its_requests(graph_server, boxes, client):
    """Graph runs up to four of a batch's requests at once: with a limit of two, a batch of
    eight to one mailbox has some refused inside its answer."""
    graph_server.enforce(MailboxLimits(concurrency=2), mailbox_time=0.3)
    http = client()
    user = "cy@example.org"
    for n in range(8):
        boxes[user].add_item("inbox", "IPM.Note", f"#{n}".encode())
    ids = list(boxes[user].folder("inbox").items)
    requests = [
        {"id": str(n), "method": "GET", "url": f"/users/{user}/messages/{item_id}"}
        for n, item_id in enumerate(ids)
    ]

    answer = http.post("/$batch", json={"requests": requests}).json()["responses"]

    statuses = sorted(r["status"] for r in answer)
    assert 200 in statuses and 429 in statuses
    for response in answer:
        if response["status"] == 429:
            error = response["body"]["error"]
            assert error["message"] == "Application is over its MailboxConcurrency limit."
            assert float(response["headers"]["Retry-After"]) > 0
    (use,) = graph_server.mailbox_use(user)
    assert use.max_in_flight == 2
