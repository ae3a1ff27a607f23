"""The advanced options a tenant may give its connector: name, type, bounds, meaning, per kind.

The one schema: the tenant form checks a tenant's options against it on save (naming the bad
key), and every connector reads its options through it when it starts (``Connector.options``),
so options edited in the database give a clear connector error, not a ValueError deep inside a
copy. Plain Python, no Django; no connector module is imported, so the form stays light.
"""

from __future__ import annotations

from dataclasses import dataclass


class OptionError(ValueError):
    """A tenant option is unknown, or its value is not of its type or within its bounds."""


@dataclass(frozen=True)
class Option:
    type: type  # int, float, str, or list (of strings)
    help: str
    default: object = None
    low: float = 0
    high: float = 0

    def read(self, name: str, value):
        if self.type is list:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise OptionError(f'option {name} must be a list of names, e.g. ["MULTIAPPEND"]')
            return value
        if self.type is str:
            if not isinstance(value, str) or not value.strip():
                raise OptionError(f"option {name} must be a non-empty text, not {value!r}")
            return value
        # JSON true/false arrive as Python bools, which are ints: no sensible number.
        numeric = (int,) if self.type is int else (int, float)
        if isinstance(value, bool) or not isinstance(value, numeric):
            raise OptionError(f"option {name} must be {self.bounds()}, not {value!r}")
        if not self.low <= value <= self.high:
            raise OptionError(f"option {name} must be {self.bounds()}, not {value!r}")
        return self.type(value)

    def bounds(self) -> str:
        if self.type is int:  # 10737418240, not 1.07374e+10
            return f"a whole number from {self.low:,} to {self.high:,}"
        return f"a number from {self.low:g} to {self.high:g}"

    def describe(self) -> str:
        if self.type in (int, float):
            return f"{self.help}: {self.bounds()}"
        return self.help


# Read outside the connectors too: discovery's estimate and every connector's limits().
COMMON = {
    "concurrency": Option(
        int, "mailboxes copied at once, below TENANT_CONNECTION_LIMIT", None, 1, 64
    ),
    "max_item_size": Option(
        int, "largest item the target takes, in bytes", None, 1024, 10 * 1024**3
    ),
}
CA_FILE = Option(str, "CA certificate file on the worker (TLS-inspecting proxies)")
# A Google tenant's labels strategy (README, "Google Workspace"): each message in every folder
# its labels make, or in one with its other labels as keywords.
LABEL_STRATEGIES = ("every_folder", "one_folder")
SCHEMAS: dict[str, dict[str, Option]] = {
    "imap": {
        **COMMON,
        "timeout": Option(float, "seconds one IMAP read may take", 60.0, 0.1, 120),
        "disable": Option(list, 'capabilities to do without, e.g. ["MULTIAPPEND"]', []),
        # OAuth2 tenants only (auth method OAuth2): who issues each mailbox's token.
        "oauth_provider": Option(
            str,
            'OAuth2 token issuer: "microsoft" (client credentials) or "google" (service account '
            "with domain-wide delegation; its JSON key is the secret)",
            "microsoft",
        ),
        "scope": Option(
            str,
            "OAuth2 token scope; default https://outlook.office365.com/.default (Microsoft) "
            "or https://mail.google.com/ (Google)",
        ),
        "ca_file": CA_FILE,
    },
    "ews": {
        **COMMON,
        "max_wait": Option(float, "seconds of server back-off waited in-process", 30.0, 0, 300),
        # EWSMaxConcurrency, Exchange's default throttling policy: 27 requests in flight per
        # account (https://learn.microsoft.com/en-us/exchange/client-developer/exchange-web-services/ews-throttling-in-exchange),
        # shared by every worker through mailboxes.budget.
        "max_concurrency": Option(int, "EWS requests in flight per mailbox", 27, 1, 1000),
    },
    "exchange_online": {
        **COMMON,
        "concurrency": Option(int, "requests one mailbox's copy sends at once", 4, 1, 64),
        # Exchange Online's limits per app and mailbox ("Outlook service limits",
        # https://learn.microsoft.com/graph/throttling-limits#outlook-service-limits), shared
        # by every worker through mailboxes.budget: 4 concurrent requests, 10,000 requests per
        # 10 minutes, 150 MB uploaded per 5 minutes (counted as 150,000,000 bytes, the lower
        # reading). The import API is under the same limits
        # (https://learn.microsoft.com/graph/api/resources/mailboxitemimportsession).
        "mailbox_concurrency": Option(int, "requests in flight per mailbox", 4, 1, 64),
        "mailbox_requests": Option(
            int, "requests per mailbox per request_window", 10_000, 1, 10**7
        ),
        "request_window": Option(
            float, "seconds mailbox_requests are counted over", 600.0, 0.1, 86400
        ),
        "import_bytes": Option(
            int, "bytes imported per mailbox per bytes_window", 150_000_000, 1, 10 * 1024**3
        ),
        "bytes_window": Option(float, "seconds import_bytes are counted over", 300.0, 0.1, 86400),
        # A worker killed mid-request leaves its place taken this long; above the longest
        # request (httpx's 60 s read timeout, a 150 MB upload).
        "budget_lease": Option(
            float, "seconds a killed worker's requests keep their budget slots", 360.0, 1, 3600
        ),
        # Microsoft publishes no Outlook limit per tenant; a consultant may cap one (0: none).
        "tenant_concurrency": Option(
            int, "requests in flight to the tenant, 0 for no cap", 0, 0, 10_000
        ),
        "tenant_requests": Option(
            int, "requests to the tenant per request_window, 0 for no cap", 0, 0, 10**9
        ),
        "ca_file": CA_FILE,
        "certificate_thumbprint": Option(str, "SHA-1 thumbprint of the app's certificate"),
        "max_inline_wait": Option(float, "seconds of throttling waited in-process", 5.0, 0, 120),
        "max_attempts": Option(int, "attempts of one throttled request", 4, 1, 20),
        "page_size": Option(int, "items listed per request", 250, 1, 1000),
        "scope": Option(
            str, "token scope (sovereign clouds)", "https://graph.microsoft.com/.default"
        ),
    },
    "maildir": dict(COMMON),
    "google": {
        **COMMON,
        "ca_file": CA_FILE,
        # Google: "Sending batches larger than 50 requests is not recommended."
        "batch_size": Option(int, "messages downloaded per batch request", 50, 1, 50),
        "page_size": Option(int, "message ids listed per request", 500, 1, 500),
        "max_inline_wait": Option(float, "seconds of throttling waited in-process", 8.0, 0, 120),
        "spool_dir": Option(
            str, "folder on the worker where a message with several labels waits for its folders"
        ),
        # Google's quotas: 15,000 units per user and 1,200,000 per project a minute.
        "user_units": Option(int, "quota units per mailbox per window", 15_000, 1, 10**9),
        "project_units": Option(
            int, "quota units per Cloud project per window", 1_200_000, 1, 10**10
        ),
        "quota_window": Option(float, "seconds the quota units are counted over", 60.0, 1, 3600),
        "labels": Option(
            str,
            'labels strategy: "every_folder" (a message in each of its label folders) or '
            '"one_folder" (in one, its other labels as keywords)',
            LABEL_STRATEGIES[0],
        ),
    },
}


def read_options(kind: str, values) -> dict:
    """``values`` checked against the schema of ``kind``, with every default filled in."""
    schema = SCHEMAS.get(kind, COMMON)
    if not isinstance(values, dict):
        raise OptionError('the connector options must be a JSON object, e.g. {"timeout": 60}')
    unknown = sorted(set(values) - set(schema))
    if unknown:
        raise OptionError(
            f"unknown option {unknown[0]} (this kind of tenant takes {', '.join(schema)})"
        )
    read = {name: option.default for name, option in schema.items()}
    for name, value in values.items():
        read[name] = schema[name].read(name, value)
    return read
