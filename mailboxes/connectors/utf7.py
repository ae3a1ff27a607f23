"""IMAP modified UTF-7 for mailbox names (RFC 3501 §5.1.3).

Printable ASCII stands for itself except ``&``, written ``&-``; any other run of characters is
UTF-16BE in base64 with ``,`` for ``/`` and no padding, between ``&`` and ``-``.
"""

import base64
import re

_RUNS = re.compile(r"([\x20-\x25\x27-\x7e]+)|(&)|([^\x20-\x7e]+)")
_SHIFTED = re.compile(r"&([A-Za-z0-9+,]*)-")


def encode(name: str) -> str:
    return _RUNS.sub(_shift, name)


def _shift(match: re.Match) -> str:
    direct, ampersand, other = match.groups()
    if direct:
        return direct
    if ampersand:
        return "&-"
    encoded = base64.b64encode(other.encode("utf-16-be")).rstrip(b"=").replace(b"/", b",")
    return "&" + encoded.decode("ascii") + "-"


def decode(name: str) -> str:
    """Decode a wire name; text that is not valid modified UTF-7 is returned as it came."""
    try:
        return _SHIFTED.sub(_unshift, name)
    except ValueError:
        return name


def _unshift(match: re.Match) -> str:
    payload = match.group(1)
    if not payload:
        return "&"
    raw = payload.replace(",", "/").encode("ascii")
    data = base64.b64decode(raw + b"=" * (-len(raw) % 4))
    return data.decode("utf-16-be")
