"""The DNS records Exchange Online expects for a domain, as the tenant itself lists them.

Microsoft's MX host can no longer be computed from the domain name (new domains get one under
mx.microsoft since July 2026, message center MC1048624), so cutover checks ask the tenant:

- ``GET /domains/{id}/serviceConfigurationRecords``: the records its services need (MX, SPF,
  autodiscover, and Skype's, retired in 2021);
  https://learn.microsoft.com/en-us/graph/api/domain-list-serviceconfigurationrecords
- ``GET /domains/{id}/verificationDnsRecords``: the records that prove the domain is the
  tenant's (a TXT "MS=ms…", or an MX to "ms….msv1.invalid" where TXT cannot be published);
  https://learn.microsoft.com/en-us/graph/api/domain-list-verificationdnsrecords

Both need the application permission Domain.Read.All (Domain.ReadWrite.All, and on older
tenants Directory.Read.All, do too). Each record is a domainDnsRecord subtype told apart by
"@odata.type" and ``recordType``, with ``label`` (the full name), ``ttl``, ``isOptional`` and
``supportedService``: domainDnsMxRecord (``mailExchange``, ``preference``), domainDnsTxtRecord
(``text``), domainDnsCnameRecord (``canonicalName``), domainDnsSrvRecord (``nameTarget``,
``port``, ``priority``, ``weight``, ``protocol``, ``service``); domainDnsUnavailableRecord
says why the others could not be made (``description``).

Plain Python like every connector: it reuses the Graph connector's sign-in, HTTP client,
throttling and error messages.
"""

from __future__ import annotations

from dataclasses import dataclass

from .base import ConnectorError
from .graph import GraphConnector, _json, _segment

PERMISSION = "Domain.Read.All"


class DomainNotFound(ConnectorError):
    """The tenant does not have the domain (Graph's 404 Request_ResourceNotFound)."""


@dataclass(frozen=True)
class DomainDnsRecord:
    """One record the tenant lists, in zone-file terms."""

    purpose: str  # "service" or "verification"
    record_type: str  # MX, TXT, CNAME, SRV
    label: str  # the full name, as Graph gives it
    value: str  # "0 contoso-com.mail.protection.outlook.com", "v=spf1 …", "10 1 443 host"
    ttl: int | None
    optional: bool
    service: str  # Graph's supportedService: Email, OfficeCommunicationsOnline, Intune, …


def _record(purpose: str, resource: dict) -> DomainDnsRecord | None:
    kind = (resource.get("recordType") or "").upper()
    label = resource.get("label") or ""
    if kind == "MX":
        value = f"{resource.get('preference') or 0} {resource.get('mailExchange', '')}"
    elif kind == "TXT":
        value = resource.get("text") or ""
    elif kind == "CNAME":
        value = resource.get("canonicalName") or ""
    elif kind == "SRV":
        value = (
            " ".join(str(resource.get(field) or 0) for field in ("priority", "weight", "port"))
            + f" {resource.get('nameTarget', '')}"
        )
        # Some tenants give the bare domain as the label, others the full SRV name.
        prefix = f"{resource.get('service', '')}.{resource.get('protocol', '')}."
        if not label.lower().startswith(prefix.lower()):
            label = prefix + label
    else:
        return None  # domainDnsUnavailableRecord: nothing to publish
    return DomainDnsRecord(
        purpose=purpose,
        record_type=kind,
        label=label,
        value=value.strip(),
        ttl=resource.get("ttl"),
        optional=bool(resource.get("isOptional")),
        service=resource.get("supportedService") or "",
    )


class GraphDomains(GraphConnector):
    """The tenant's domains; opened and closed like the mailbox connector, without a mailbox."""

    def __init__(self, endpoint):
        super().__init__(endpoint, "")

    def dns_records(self, domain: str) -> list[DomainDnsRecord]:
        """Every record the tenant lists for ``domain``: its services', then verification's."""
        what = f"read the DNS records of {domain}"
        records = []
        for purpose, path in (
            ("service", "serviceConfigurationRecords"),
            ("verification", "verificationDnsRecords"),
        ):
            url = f"/domains/{_segment(domain)}/{path}"
            while url:
                response = self._send("GET", url)
                body = _json(response)
                if response.status_code == 404:
                    raise DomainNotFound(
                        f"{domain} is not a domain of this tenant: add it in the Microsoft 365 "
                        "admin centre (Settings, Domains), then fetch its records again."
                    )
                if response.status_code >= 400:
                    raise self._error(response.status_code, body, what, PERMISSION)
                found = (_record(purpose, resource) for resource in body.get("value", []))
                records += [record for record in found if record]
                url = body.get("@odata.nextLink")
        return records
