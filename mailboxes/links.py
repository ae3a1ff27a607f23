"""Signed end-user links: one mailbox, read-only, no login.

The token carries the mailbox id, the mailbox's ``link_version`` and an optional expiry, signed
with the project's SECRET_KEY (django.core.signing). Bumping ``link_version`` revokes every
link handed out so far without keeping a list of them.
"""

import time
from datetime import datetime

from django.core import signing
from django.db.models import F
from django.urls import reverse

from .models import Mailbox

SALT = "mailferry.enduser-link"


class LinkInvalid(Exception):
    """Tampered, cut short, or its mailbox deleted: no page behind it (404). The user sees the
    same friendly page as for a revoked link: they cannot tell the cases apart, and the answer
    must not help anyone guessing tokens either."""


class LinkGone(Exception):
    """Revoked or expired: the link was real once; tell the user to ask for a new one."""


def make_token(mailbox: Mailbox, expires_at: datetime | None = None) -> str:
    payload = {"m": mailbox.pk, "v": mailbox.link_version}
    if expires_at is not None:
        payload["e"] = int(expires_at.timestamp())
    return signing.dumps(payload, salt=SALT, compress=True)


def enduser_url(mailbox: Mailbox, expires_at: datetime | None = None) -> str:
    return reverse("enduser_progress", args=[make_token(mailbox, expires_at)])


def mailbox_for_token(token: str, queryset=None) -> Mailbox:
    try:
        payload = signing.loads(token, salt=SALT)
        mailbox_id, version = int(payload["m"]), int(payload["v"])
    except (signing.BadSignature, KeyError, TypeError, ValueError) as exc:
        raise LinkInvalid from exc
    queryset = Mailbox.objects.all() if queryset is None else queryset
    mailbox = queryset.filter(pk=mailbox_id).first()
    if mailbox is None:
        raise LinkInvalid
    expires = payload.get("e")
    if mailbox.link_version != version or (expires is not None and expires < time.time()):
        raise LinkGone
    return mailbox


def revoke_links(mailbox: Mailbox) -> None:
    Mailbox.objects.filter(pk=mailbox.pk).update(link_version=F("link_version") + 1)
    mailbox.refresh_from_db(fields=["link_version"])
