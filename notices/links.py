"""Absolute end-user links for messages sent by the worker, which has no request to ask."""

from django.conf import settings

from mailboxes.links import enduser_url


def absolute_progress_link(mailbox) -> str:
    return settings.SITE_URL.rstrip("/") + enduser_url(mailbox)
