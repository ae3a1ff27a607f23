"""Ask every authoritative server and every resolver, concurrently, what they serve.

Plain Python (no Django). Each (server, name, type) question is asked once, in its own thread,
with its own timeout: a server that never answers costs its own questions a timeout and
nothing else.
"""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from .records import Expected, normalize_domain, rdata_value
from .rules import Finding, dmarc_findings, spf_findings, ttl_findings

DEFAULT_TIMEOUT = 3.0
# Every question gets its own thread, so a silent server delays nobody else.
MAX_THREADS = 256


class Verdict:
    OK = "ok"
    MISSING = "missing"
    WRONG = "wrong"
    OLD = "old"
    TIMEOUT = "timeout"
    NXDOMAIN = "nxdomain"
    REFUSED = "refused"
    ERROR = "error"

    LABELS = {
        OK: "ok",
        MISSING: "missing",
        WRONG: "wrong value",
        OLD: "old value still served",
        TIMEOUT: "timeout",
        NXDOMAIN: "NXDOMAIN",
        REFUSED: "refused",
        ERROR: "error",
    }


class CheckError(Exception):
    """The check could not start (bad name, no NS, nobody answered): a message for people."""


@dataclass(frozen=True)
class Server:
    host: str
    port: int = 53
    role: str = "authoritative"  # or "resolver"
    name: str = ""  # the NS host name, when found from NS records

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def label(self) -> str:
        return f"{self.name} ({self.address})" if self.name else self.address

    @classmethod
    def parse(cls, text: str, role: str = "authoritative") -> Server:
        """``host``, ``host:port`` or ``[v6]:port``; ValueError with a readable message."""
        text = text.strip()
        host, port = text, "53"
        if text.startswith("["):
            host, bracket, rest = text[1:].partition("]")
            host = host if bracket else ""
            port = rest.lstrip(":") or "53"
        elif text.count(":") == 1:
            host, port = text.split(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{text!r} is not a server: expected host or host:port")
        return cls(host=host, port=int(port), role=role)


@dataclass
class Answer:
    status: str  # "answer", "nodata", or a failure verdict (nxdomain, timeout, refused, error)
    values: list[str] = field(default_factory=list)
    ttl: int | None = None
    message: str = ""


@dataclass
class Result:
    record: Expected
    server: Server
    verdict: str
    values: list[str]
    ttl: int | None
    message: str = ""


@dataclass
class Report:
    domain: str
    servers: list[Server]
    results: list[Result]
    findings: list[Finding]
    checked_at: datetime

    @property
    def ok(self) -> bool:
        """Every required record in place on every server, and no rule broken."""
        return all(
            r.verdict == Verdict.OK for r in self.results if not r.record.optional
        ) and not any(f.level == "error" for f in self.findings)


def ask(server: Server, qname: str, rtype: str, timeout: float) -> Answer:
    """One question to one server. Never raises: failures are answers too."""
    query = dns.message.make_query(qname, rtype)
    if server.role == "authoritative":
        query.flags &= ~dns.flags.RD
    try:
        host = socket.gethostbyname(server.host)
        reply, _ = dns.query.udp_with_fallback(query, host, timeout=timeout, port=server.port)
    except dns.exception.Timeout:
        return Answer("timeout", message=f"no answer within {timeout:g} s")
    except (OSError, dns.exception.DNSException) as exc:
        return Answer("error", message=f"{type(exc).__name__}: {exc}")
    rcode = reply.rcode()
    if rcode == dns.rcode.NXDOMAIN:
        return Answer("nxdomain", message=f"{qname} does not exist")
    if rcode == dns.rcode.REFUSED:
        return Answer("refused", message="the server refused: it does not serve this zone")
    if rcode != dns.rcode.NOERROR:
        return Answer("error", message=f"the server answered {dns.rcode.to_text(rcode)}")
    for found_type in (rtype, "CNAME") if rtype in ("A", "AAAA") else (rtype,):
        # A name that is a CNAME answers an address question with the CNAME: it has an
        # address (the host's), which is what an "A or CNAME" record asks.
        try:
            rrset = reply.find_rrset(
                reply.answer,
                dns.name.from_text(qname),
                dns.rdataclass.IN,
                dns.rdatatype.from_text(found_type),
            )
        except KeyError:
            continue
        values = [rdata_value(found_type, r) for r in rrset]
        if found_type != rtype:
            values = [f"CNAME {v}" for v in values]
        return Answer("answer", values, rrset.ttl)
    return Answer("nodata")


def verdict(record: Expected, answer: Answer, old: list[Expected]) -> str:
    if answer.status in ("timeout", "refused", "error"):
        return answer.status
    values = answer.values
    if record.present:
        # TXT records share a name with unrelated ones: their old values get their own verdict.
        if record.rtype != "TXT" and any(o.matches(v) for o in old for v in values):
            return Verdict.OLD
        if any(record.matches(v) for v in values):
            return Verdict.OK
        if answer.status == "nxdomain":
            return Verdict.NXDOMAIN
        # Several TXT records share a name: others being there is not a wrong value.
        return Verdict.WRONG if values and record.rtype != "TXT" else Verdict.MISSING
    return Verdict.OLD if any(record.matches(v) for v in values) else Verdict.OK


def ask_all(questions, timeout: float) -> dict:
    """{(server, name, type): Answer} for every question, asked concurrently."""
    questions = list(dict.fromkeys(questions))
    if not questions:
        return {}
    with ThreadPoolExecutor(max_workers=min(MAX_THREADS, len(questions))) as pool:
        answers = pool.map(lambda q: ask(*q, timeout=timeout), questions)
        return dict(zip(questions, answers, strict=True))


def first_answer(servers: list[Server], qname: str, rtype: str, timeout: float) -> Answer:
    """The first definite answer from any server (for looking things up, not for verdicts):
    a silent server costs nothing once another one has answered."""
    failed = Answer("error", message="no server to ask")
    if not servers:
        return failed
    pool = ThreadPoolExecutor(max_workers=len(servers))
    try:
        futures = {pool.submit(ask, s, qname, rtype, timeout): s for s in servers}
        for future in as_completed(futures):
            answer = future.result()
            if answer.status in ("answer", "nodata", "nxdomain"):
                return answer
            failed = Answer(answer.status, message=f"{futures[future].label}: {answer.message}")
        return failed
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def authoritative_servers(
    domain: str, resolvers: list[Server], timeout: float, port: int = 53
) -> list[Server]:
    """The zone's nameservers from its NS records, each at its address."""
    if not resolvers:
        raise CheckError("no resolver is configured to find the nameservers: give --server")
    answer = first_answer(resolvers, domain, "NS", timeout)
    if answer.status == "nxdomain":
        raise CheckError(f"{domain} does not exist in DNS (NXDOMAIN)")
    if answer.status == "nodata":
        raise CheckError(
            f"{domain} has no NS records: it is not a DNS zone. Check the name, or give its "
            "nameservers explicitly"
        )
    if answer.status != "answer":
        raise CheckError(f"could not look up the nameservers of {domain}: {answer.message}")
    servers = []
    for ns in sorted(answer.values):
        address = first_answer(resolvers, ns, "A", timeout)
        for ip in address.values:
            servers.append(Server(ip, port, "authoritative", ns.rstrip(".")))
    if not servers:
        raise CheckError(
            f"none of the nameservers of {domain} ({', '.join(answer.values)}) has an address"
        )
    return servers


def check(
    domain: str,
    records: list[Expected],
    servers: list[Server] | None = None,
    resolvers: list[Server] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    cutover_at: datetime | None = None,
    ns_port: int = 53,
) -> Report:
    """Ask every server about every record; apply the SPF, DMARC and TTL rules.

    ``servers`` overrides the zone's NS records (split DNS, tests); ``resolvers`` are asked too
    and used to look up the nameservers and what SPF includes.
    """
    domain = normalize_domain(domain)
    resolvers = list(resolvers or [])
    servers = (
        list(servers) if servers else authoritative_servers(domain, resolvers, timeout, ns_port)
    )
    everyone = servers + resolvers
    special = [("@", "TXT"), ("_dmarc", "TXT")]
    names = {(r.fqdn(domain), r.rtype) for r in records} | {
        (Expected(n, t, "").fqdn(domain), t) for n, t in special
    }
    answers = ask_all([(s, n, t) for s in everyone for n, t in sorted(names)], timeout)
    results = []
    for record in records:
        old = [
            o for o in records if not o.present and (o.name, o.rtype) == (record.name, record.rtype)
        ]
        for server in everyone:
            answer = answers[(server, record.fqdn(domain), record.rtype)]
            found = verdict(record, answer, old)
            message = "; ".join(
                filter(None, [answer.message, record.explain(found, answer.values)])
            )
            results.append(Result(record, server, found, answer.values, answer.ttl, message))
    lookup = resolvers or servers

    def txt(name: str) -> Answer:
        return first_answer(lookup, name, "TXT", timeout)

    apex = {s.label: answers[(s, domain, "TXT")] for s in servers}
    dmarc = {s.label: answers[(s, f"_dmarc.{domain}", "TXT")] for s in servers}
    findings = (
        spf_findings(domain, apex, txt)
        + dmarc_findings(domain, dmarc)
        + ttl_findings(domain, results, cutover_at)
    )
    return Report(domain, servers + resolvers, results, findings, datetime.now(UTC))


def served_now(
    domain: str,
    records: list[Expected],
    servers: list[Server] | None = None,
    resolvers: list[Server] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    ns_port: int = 53,
) -> dict[Expected, list[str]]:
    """Every value any of the zone's nameservers serves now at each record's name and type."""
    domain = normalize_domain(domain)
    servers = (
        list(servers)
        if servers
        else authoritative_servers(domain, list(resolvers or []), timeout, ns_port)
    )
    answers = ask_all([(s, r.fqdn(domain), r.rtype) for s in servers for r in records], timeout)
    return {
        r: sorted({v for s in servers for v in answers[(s, r.fqdn(domain), r.rtype)].values})
        for r in records
    }
