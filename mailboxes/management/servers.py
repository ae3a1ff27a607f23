"""Servers given as URLs on the command line (``copy_mailbox``, ``create_project``).

``imap://`` (plain, port 143), ``imaps://`` (TLS, 993), ``imap+starttls://`` (STARTTLS, 143),
``maildir:///path``. User and password are percent-decoded (``%40`` for ``@``). Query
parameters: ``insecure=1`` skips TLS certificate checks; ``master=USER`` (``create_project``
only) makes USER the tenant's master user, who logs in with the URL's password for each mailbox.
"""

import os
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

from django.core.management.base import CommandError

from projects.models import Tenant

SCHEMES = {"imap": ("plain", 143), "imaps": ("tls", 993), "imap+starttls": ("starttls", 143)}
YES = ("1", "true", "yes")


def default_port(security: str) -> int:
    return 993 if security == "tls" else 143


@dataclass
class Side:
    """One server (and perhaps an account on it) from a URL."""

    kind: str
    host: str
    port: int | None
    security: str
    username: str
    password: str = field(repr=False)
    verify_tls: bool
    master: str = ""

    @property
    def address(self) -> str:
        """The mailbox this URL names: the IMAP user, or the maildir path."""
        return self.username if self.kind == "imap" else self.host

    @property
    def has_login(self) -> bool:
        """Whether the URL names an account to log in as (a user with its password)."""
        return self.kind == "imap" and bool(self.username and self.password) and not self.master

    def server(self) -> tuple:
        return _server(self.kind, self.host, self.port, self.security)

    def serves(self, tenant: Tenant) -> bool:
        """Whether ``tenant`` is this server (kind, host, port, security; never the login)."""
        return self.server() == tenant_server(tenant)

    def describe(self) -> str:
        return describe_server(self.server())

    def new_tenant(self) -> Tenant:
        """A tenant for this server; the URL's account becomes its username and password (the
        connection test's account, and the tenant password of the login rule)."""
        return Tenant.objects.create(
            kind=self.kind,
            endpoint=self.host,
            port=self.port,
            security=self.security,
            username=self.username,
            secret=self.password,
            impersonation=self.master,
            verify_tls=self.verify_tls,
        )


def _server(kind: str, host: str, port: int | None, security: str) -> tuple:
    if kind == "maildir":
        return (kind, os.path.normpath(host) if host else "")
    return (kind, host.strip().lower(), port or default_port(security), security)


def tenant_server(tenant: Tenant) -> tuple:
    return _server(tenant.kind, tenant.endpoint, tenant.port, tenant.security)


def describe_server(server: tuple) -> str:
    if server[0] == "maildir":
        return f"maildir {server[1]}"
    if server[0] != "imap":
        return f"{server[0]} {server[1] or '(autodiscover)'}"
    kind, host, port, security = server
    return f"{kind} {host}:{port} ({security})"


def parse_url(url: str, role: str, need_user: bool = True, allow_master: bool = False) -> Side:
    """The ``role`` ("source", "target") server of ``url``; bad URLs are usage errors (2)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise CommandError(f"The {role} URL is not valid: {exc}.", returncode=2) from exc
    scheme = parts.scheme.lower()
    query = parse_qs(parts.query)
    known = {"insecure", "master"} if allow_master else {"insecure"}
    unknown = sorted(set(query) - known)
    if unknown:
        raise CommandError(
            f"The {role} URL has unknown parameters: {', '.join(unknown)} "
            f"(known: {', '.join(sorted(known))}).",
            returncode=2,
        )
    if scheme == "maildir":
        if not parts.path or parts.netloc:
            raise CommandError(f"The {role} URL must look like maildir:///path.", returncode=2)
        return Side("maildir", parts.path, None, "plain", "", "", True)
    if scheme not in SCHEMES:
        schemes = ", ".join([*SCHEMES, "maildir"])
        raise CommandError(
            f"The {role} URL must start with one of {schemes} (got {url.split(':')[0]!r}).",
            returncode=2,
        )
    username, password = unquote(parts.username or ""), unquote(parts.password or "")
    if not parts.hostname or (need_user and not username):
        form = "user:password@host[:port]" if need_user else "[user:password@]host[:port]"
        raise CommandError(
            f"The {role} URL needs {'a user and ' if need_user else ''}a host: {scheme}://{form}.",
            returncode=2,
        )
    master = query.get("master", [""])[0].strip()
    if master and not password:
        raise CommandError(
            f"The {role} URL names a master user but no password: "
            f"{scheme}://{master}:PASSWORD@host?master={master}.",
            returncode=2,
        )
    security, default = SCHEMES[scheme]
    insecure = query.get("insecure", ["0"])[0].lower() in YES
    return Side(
        "imap",
        parts.hostname,
        port or default,
        security,
        username or master,
        password,
        not insecure,
        master,
    )
