"""Where a connector may go: never to the machine itself nor to the app's own services, and
never outside the maildir root.

A tenant's endpoint is typed by a consultant, so it is untrusted input: an IMAP host of
127.0.0.1:6379 made the worker talk to Redis, an EWS URL on loopback made it POST there, a
maildir path made it read another client's Dovecot store. ``Reach`` says what is allowed; the
app builds it from settings (``projects.Tenant.endpoint_config``) and it travels on the
``Endpoint`` like every other connector setting.

Private ranges (10/8, 172.16/12, 192.168/16) stay allowed: on-premises Exchange lives there.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

from .base import ConnectorError, Reach, TransientError

# Linux connects 0.x.x.x to the machine itself, like the unspecified address.
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
ALLOW_HINT = "set ALLOW_LOCAL_ENDPOINTS=1 to allow it"


class ReachError(ConnectorError):
    """The endpoint is one a tenant may not use; never retried."""


def problem(reach: Reach, address: str) -> str:
    """Why a connector may not connect to ``address`` (an IP), or ""."""
    if reach.allow_local:
        return ""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    ip = getattr(ip, "ipv4_mapped", None) or ip
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_unspecified or ip in _THIS_NETWORK:
        return "an unspecified address"
    if any(ip in network for network in _service_networks(reach)):
        return "an address of the app's own services (SERVICE_HOSTS)"
    return ""


def _service_networks(reach: Reach) -> list:
    networks = []
    for entry in reach.services:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            # A host name (compose's "redis"): whatever it resolves to now.
            for address in _resolve(entry, None, quiet=True):
                networks.append(ipaddress.ip_network(address.split("%", 1)[0]))
    return networks


def addresses(reach: Reach, host: str, port: int | None) -> list[str]:
    """The addresses ``host`` resolves to now, every one allowed, or ReachError naming the
    first that is not. Connect to these, not to ``host``: resolving again could answer
    differently (DNS rebinding). With everything allowed, just ``host``."""
    if reach.allow_local:
        return [host]
    found = _resolve(host, port)
    for address in found:
        why = problem(reach, address)
        if why:
            raise ReachError(refusal(host, port, address, why))
    return found


def connect(reach: Reach, host: str, port: int, timeout: float | None) -> socket.socket:
    """A TCP connection to ``host`` through an allowed address (the first that answers)."""
    last_error: OSError | None = None
    for address in addresses(reach, host, port):
        try:
            return socket.create_connection((address, port), timeout=timeout)
        except OSError as exc:
            last_error = exc
    raise last_error


def maildir_folder(reach: Reach, path: str) -> Path:
    """The maildir folder ``path``, resolved when confined; ReachError when it is not under
    the maildir root: no "..", and symbolic links are followed before the check, so one
    inside the root pointing outside is refused."""
    folder = Path(path).expanduser()
    if not reach.maildir_root:
        return folder
    root = Path(reach.maildir_root).expanduser().resolve()
    if not folder.is_absolute() or ".." in folder.parts:
        raise ReachError(
            f"The maildir folder {path!r} must be an absolute path, without .., under the "
            f"maildir root {root} (MAILDIR_ROOT)."
        )
    resolved = Path(os.path.realpath(folder))
    if resolved != root and root not in resolved.parents:
        raise ReachError(
            f"The maildir folder {path!r} is not under the maildir root {root} "
            "(MAILDIR_ROOT); symbolic links are followed before this check."
        )
    return resolved


def url_place(url: str) -> tuple[str, int]:
    """(host, port) an HTTP URL as a tenant typed it leads to; https when it names no scheme."""
    parts = urlsplit(url if "://" in url else f"https://{url}")
    try:
        port = parts.port
    except ValueError:
        port = None  # no number: the HTTP client refuses such a URL itself
    return parts.hostname or "", port or (80 if parts.scheme == "http" else 443)


def refusal(host: str, port: int | None, address: str, why: str) -> str:
    where = f"{host}:{port}" if port else host
    if address == host:
        return f"endpoint {where} is {why}; {ALLOW_HINT}"
    return f"endpoint {where} resolves to {address}, {why}; {ALLOW_HINT}"


def _resolve(host: str, port: int | None, quiet: bool = False) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        if quiet:
            return []
        raise TransientError(f"Cannot resolve {host}: {exc}") from exc
    return list(dict.fromkeys(str(info[4][0]) for info in infos))
