from django.db import models
from django.db.models import OuterRef, Prefetch, Subquery
from django.utils import timezone

from projects.models import Domain

from .checker import Verdict
from .records import MATCHES, RECORD_TYPES, WHY, Expected


class DnsRecord(models.Model):
    """A record one domain must publish, or (``present=False``) must no longer publish."""

    class Group(models.TextChoices):
        MX = "mx", "MX"
        VERIFICATION = "verification", "Domain verification"
        AUTODISCOVER = "autodiscover", "Autodiscover"
        SPF = "spf", "SPF"
        DKIM = "dkim", "DKIM"
        DMARC = "dmarc", "DMARC"
        CLIENTS = "clients", "Mail programs' set-up (SRV, autoconfig)"
        SIP = "sip", "SIP (Lync / Skype, retired)"
        SERVICES = "services", "Other services of the tenant"
        OLD = "old", "Old provider's records (must be gone)"
        CUSTOM = "custom", "Custom"

    class Source(models.TextChoices):
        DEFAULT = "default", "expected on this route"
        TENANT = "tenant", "from the tenant"
        SNAPSHOT = "snapshot", "served before cutover"
        CONSULTANT = "consultant", "added by hand"

    domain = models.ForeignKey(Domain, models.CASCADE, related_name="dns_records")
    group = models.CharField(max_length=20, choices=Group.choices, default=Group.CUSTOM)
    name = models.CharField(
        max_length=253, default="@", help_text='Relative name; "@" is the domain.'
    )
    rtype = models.CharField("type", max_length=10, choices=[(t, t) for t in RECORD_TYPES])
    value = models.CharField(
        max_length=1000,
        blank=True,
        help_text='For "one_of", the forms separated by |; "*" stands for one label. Empty '
        'for "any".',
    )
    match = models.CharField(max_length=10, choices=[(m, m) for m in MATCHES], default="exact")
    present = models.BooleanField(default=True)
    changes = models.BooleanField(
        default=False, help_text="Changes at cutover: its TTL should be 300 s or less beforehand."
    )
    optional = models.BooleanField(
        default=False, help_text="Checked and shown, but its absence blocks nothing."
    )
    # Who said the domain needs it: tenant records are replaced when fetched again, and
    # records added by hand are never replaced.
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.CONSULTANT)
    fetched_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["domain", "-present", "group", "name", "rtype", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["domain", "name", "rtype", "value", "present"], name="unique_dns_record"
            )
        ]

    def __str__(self):
        prefix = "" if self.present else "gone: "
        return f"{prefix}{self.rtype} {self.name} {self.value}"

    def expected(self) -> Expected:
        return Expected(
            name=self.name,
            rtype=self.rtype,
            value=self.value,
            match=self.match,
            present=self.present,
            group=self.group,
            changes=self.changes,
            optional=self.optional,
            key=self.pk,
        )

    @property
    def shown_value(self) -> str:
        return self.expected().shown()

    @property
    def why(self) -> str:
        return WHY.get(self.group, "")

    @property
    def origin(self) -> str:
        if self.source == self.Source.TENANT and self.fetched_at:
            return f"from the tenant, fetched at {self.fetched_at:%Y-%m-%d %H:%M} UTC"
        return self.get_source_display()


class TenantFetch(models.Model):
    """The last time a domain's records were read from its target tenant, and what went wrong."""

    domain = models.OneToOneField(Domain, models.CASCADE, related_name="tenant_fetch")
    attempted_at = models.DateTimeField(default=timezone.now)
    fetched_at = models.DateTimeField(null=True, blank=True)  # the last that worked
    error = models.TextField(blank=True)
    records = models.PositiveIntegerField(default=0)

    def __str__(self):
        return f"{self.domain}: {self.error or f'{self.records} records'}"


class DnsCheckQuerySet(models.QuerySet):
    def latest_per_domain(self, domains):
        """The newest check of each domain, one query."""
        newest = (
            DnsCheck.objects.filter(domain=OuterRef("domain"))
            .order_by("-checked_at", "-id")
            .values("id")[:1]
        )
        return self.filter(domain__in=domains, id=Subquery(newest))

    def with_results(self):
        results = DnsResult.objects.select_related("record")
        return self.prefetch_related(Prefetch("results", queryset=results))


class DnsCheck(models.Model):
    """One run over one domain: every record on every server, and the rules' findings."""

    domain = models.ForeignKey(Domain, models.CASCADE, related_name="dns_checks")
    checked_at = models.DateTimeField(default=timezone.now, db_index=True)
    # The check could not run (bad name, no NS): the reason, for people.
    error = models.TextField(blank=True)
    servers = models.JSONField(default=list, blank=True)  # labels, in column order
    findings = models.JSONField(default=list, blank=True)  # Finding.as_dict() items
    ok = models.BooleanField(default=False)

    objects = DnsCheckQuerySet.as_manager()

    KEEP = 20  # checks kept per domain: beat re-checks every minute during cutover

    class Meta:
        ordering = ["-checked_at", "-id"]

    def __str__(self):
        return f"{self.domain} at {self.checked_at:%Y-%m-%d %H:%M:%S}"

    def grid(self) -> list[tuple]:
        """[(record, [result or None per server column], note)], from prefetched results; the
        note is what the record's results say beyond the verdict (the value expected, the form
        found), once per row: a server's own failure stays in its cell."""
        rows: dict[int, dict] = {}
        records = {}
        for result in self.results.all():
            records[result.record_id] = result.record
            rows.setdefault(result.record_id, {})[result.server] = result
        return [
            (
                records[rid],
                [cells.get(label) for label in self.servers],
                next((r.message for r in cells.values() if r.message and r.answered), ""),
            )
            for rid, cells in sorted(rows.items(), key=lambda item: _order(records[item[0]]))
        ]

    def blocking(self, groups) -> list[str]:
        """Why the required records and rules of ``groups`` are not all ok (empty when they
        are)."""
        if self.error:
            return [self.error]
        reasons = [
            f"{r.record.rtype} {r.record.name} on {r.server}: {r.get_verdict_display()}"
            + (f" ({r.message})" if r.message else "")
            for r in self.results.all()
            if r.record.group in groups and r.verdict != Verdict.OK and not r.record.optional
        ]
        return reasons + [f["message"] for f in self.findings if f["group"] in groups]

    def covers(self, groups) -> bool:
        """The check ran and said something about ``groups``: a record of theirs (for "ttl", a
        record that changes at cutover) was asked about."""
        return not self.error and any(
            r.record.group in groups or ("ttl" in groups and r.record.changes)
            for r in self.results.all()
            if r.record.present
        )

    def prune(self) -> None:
        keep = self.domain.dns_checks.values("id")[: self.KEEP]
        self.domain.dns_checks.exclude(id__in=list(keep.values_list("id", flat=True))).delete()


def _order(record):
    return (not record.present, record.group, record.name, record.rtype, record.id)


class DnsResult(models.Model):
    """What one server said about one record in one check."""

    dns_check = models.ForeignKey(DnsCheck, models.CASCADE, related_name="results")
    record = models.ForeignKey(DnsRecord, models.CASCADE, related_name="results")
    server = models.CharField(max_length=300)
    role = models.CharField(max_length=20, default="authoritative")
    verdict = models.CharField(max_length=10, choices=list(Verdict.LABELS.items()))
    values = models.JSONField(default=list, blank=True)
    ttl = models.PositiveIntegerField(null=True, blank=True)
    message = models.CharField(max_length=300, blank=True)
    checked_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"{self.record} on {self.server}: {self.verdict}"

    @property
    def answered(self) -> bool:
        """The server gave an answer (its message is about the record, not about the server)."""
        return self.verdict not in (Verdict.TIMEOUT, Verdict.REFUSED, Verdict.ERROR)
