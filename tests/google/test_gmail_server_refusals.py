"""What the Gmail API test server refuses, as Google does, seen through the real clients:
google-auth's service-account grant and the connector's httpx calls."""

import ssl
import uuid

import httpx
import pytest

from mailboxes.connectors.base import AuthError, ConnectorError
from mailboxes.connectors.gmail import READ_SCOPE, GmailConnector

from .conftest import google_endpoint
from .seed import USERS, seed

# Each call spends its quota units in the mailbox's budget, kept in the database here.
pytestmark = pytest.mark.django_db


def connect(gmail, key, tmp_path, user):
    connector = GmailConnector(google_endpoint(gmail, key, tmp_path / "spool"), user)
    connector.open()
    return connector


def test_each_mailbox_gets_its_own_delegated_token_and_sees_only_its_mail(gmail, tmp_path):
    boxes = seed(gmail, per_user=9)
    for user in USERS:
        connector = connect(gmail, gmail.key, tmp_path, user)
        assert connector.check() == (
            f"Connected: {len(boxes[user].labels)} labels, 9 messages in {user}."
        )
        connector.close()
    assert sorted(grant.subject for grant in gmail.tokens.values()) == sorted(USERS)
    assert {grant.scopes for grant in gmail.tokens.values()} == {frozenset({READ_SCOPE})}


def test_a_client_id_without_delegation_for_the_scope_is_refused(gmail, tmp_path):
    seed(gmail, per_user=1)
    other = gmail.add_service_account("no-delegation")
    gmail.delegate(other["client_id"], ["https://www.googleapis.com/auth/gmail.send"])
    with pytest.raises(AuthError, match="unauthorized_client: Client is unauthorized"):
        connect(gmail, other, tmp_path, USERS[0]).check()


def test_a_key_the_service_account_was_not_given_is_refused(gmail, tmp_path):
    seed(gmail, per_user=1)
    stranger = gmail.add_service_account("stranger")
    forged = dict(gmail.key, private_key=stranger["private_key"])
    with pytest.raises(AuthError, match="invalid_grant: Invalid JWT Signature"):
        connect(gmail, forged, tmp_path, USERS[0]).check()


def test_a_mailbox_outside_the_domain_is_refused(gmail, tmp_path):
    seed(gmail, per_user=1)
    with pytest.raises(AuthError, match="Invalid email or User ID"):
        connect(gmail, gmail.key, tmp_path, "nobody@elsewhere.example").check()


def test_an_expired_token_is_renewed_once(gmail, tmp_path):
    boxes = seed(gmail, per_user=3)
    connector = connect(gmail, gmail.key, tmp_path, USERS[0])
    connector.check()
    gmail.expire_tokens()  # google-auth still holds it as valid: Google says 401
    inbox = next(f for f in connector.folders() if f.native_id == "INBOX")
    refs = connector.changes(inbox, {}).items
    assert [item.data for item in connector.fetch(inbox, [r.source_id for r in refs])] == [
        m.raw for m in boxes[USERS[0]].messages.values() if "INBOX" in m.labels
    ]
    assert gmail.counts["token"] == 2
    connector.close()


def test_the_api_refuses_what_google_refuses(gmail, tmp_path):
    seed(gmail, per_user=1)
    connector = connect(gmail, gmail.key, tmp_path, USERS[0])
    token = connector._token()
    client = httpx.Client(
        verify=ssl.create_default_context(cafile=gmail.cert_file), base_url=gmail.url
    )
    auth = {"Authorization": f"Bearer {token}"}

    no_token = client.get("/gmail/v1/users/me/labels")
    assert no_token.status_code == 401
    assert no_token.json()["error"]["errors"][0]["reason"] == "authError"
    other_user = client.get(f"/gmail/v1/users/{USERS[1]}/labels", headers=auth)
    assert other_user.status_code == 403
    assert other_user.json()["error"]["message"] == f"Delegation denied for {USERS[0]}"
    assert client.delete("/gmail/v1/users/me/messages/1", headers=auth).status_code == 404
    assert client.get("/gmail/v1/users/me/messages/1?format=raw", headers=auth).json() == {
        "error": {
            "code": 404,
            "message": "Requested entity was not found.",
            "errors": [
                {
                    "message": "Requested entity was not found.",
                    "domain": "global",
                    "reason": "notFound",
                }
            ],
            "status": "NOT_FOUND",
        }
    }
    not_multipart = client.post("/batch/gmail/v1", headers=auth, json={})
    assert not_multipart.status_code == 400
    boundary = uuid.uuid4().hex
    calls = "".join(
        f"--{boundary}\r\nContent-Type: application/http\r\n\r\nGET /gmail/v1/users/me/profile\r\n"
        for _ in range(101)
    )
    too_many = client.post(
        "/batch/gmail/v1",
        headers=auth | {"Content-Type": f"multipart/mixed; boundary={boundary}"},
        content=f"{calls}--{boundary}--\r\n",
    )
    assert too_many.status_code == 400 and "at most 100" in too_many.json()["error"]["message"]
    client.close()
    connector.close()


def test_the_quota_is_refused_with_googles_bodies(gmail, tmp_path):
    seed(gmail, per_user=1)
    connector = connect(gmail, gmail.key, tmp_path, USERS[0])
    client = httpx.Client(
        verify=ssl.create_default_context(cafile=gmail.cert_file), base_url=gmail.url
    )
    auth = {"Authorization": f"Bearer {connector._token()}"}
    gmail.set_quota(units=2, window=60)
    assert client.get("/gmail/v1/users/me/profile", headers=auth).status_code == 200
    assert client.get("/gmail/v1/users/me/profile", headers=auth).status_code == 200
    refused = client.get("/gmail/v1/users/me/profile", headers=auth)
    assert refused.status_code == 429
    assert refused.json()["error"]["errors"][0] == {
        "message": refused.json()["error"]["message"],
        "domain": "usageLimits",
        "reason": "rateLimitExceeded",
    }
    gmail.set_quota(units=2, window=60, error="userRateLimitExceeded")
    user_limit = client.get("/gmail/v1/users/me/profile", headers=auth)
    assert (user_limit.status_code, user_limit.json()["error"]["message"]) == (
        403,
        "User Rate Limit Exceeded",
    )
    # A throttled connector that may not wait says so: the engine retries it later.
    connector.max_inline_wait = 0
    with pytest.raises(ConnectorError, match="Throttled by Google"):
        connector.check()
    client.close()
    connector.close()
    assert gmail.units[USERS[0]] == 2  # refused calls cost nothing
