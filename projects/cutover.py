"""The cutover-day checklist: the template every project starts from, and the steps that tick
themselves (DNS checks passed, every mailbox's pass done).

The steps and warnings come from a real migration that went wrong on that day: the old provider
kept the domain, inbound mail bounced with relay errors for a day, and only its support (business
hours, North American Central time) could release it.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Q, Subquery

from dnscheck.models import DnsCheck, DnsRecord
from mailboxes.models import MailboxPass

from .models import CutoverStep, MailboxStep, Project

K = CutoverStep.Kind
OFF_PEAK = "Do this off-peak, and plan nothing for the next day."
STUCK_DOMAIN = (
    "The old provider may hold on to the domain after you remove it: outside mail then fails "
    "with relay errors while internal mail works, until its support flushes the domain. That "
    "support may only work business hours (in the seed: North American Central time): plan the "
    "removal so they can be reached."
)
OWN_ACCOUNT = (
    "You cannot change the domain of the account you are signed in with: use a separate admin "
    "account."
)


@dataclass(frozen=True)
class StepTemplate:
    key: str
    title: str
    kind: str = K.MANUAL
    warning: str = ""
    dns_groups: tuple = ()
    pass_kind: str = ""


TEMPLATE = (
    StepTemplate(
        "lower-ttl",
        "Lower the TTL of MX, autodiscover and SPF records to 300 s, a day ahead",
        K.DNS,
        "Resolvers keep the old records as long as the old TTL says: lower it at least one old "
        "TTL before cutover.",
        dns_groups=("ttl",),
    ),
    StepTemplate("prestage", "Pre-stage complete for every mailbox", K.COPY, pass_kind="prestage"),
    StepTemplate("freeze", "Announce the freeze and the cutover window to users", warning=OFF_PEAK),
    StepTemplate(
        "source-users-off",
        "Move users off the domain in the source (back to its initial domain)",
        warning=OWN_ACCOUNT,
    ),
    StepTemplate(
        "source-domain-off",
        "Remove the domain from the source",
        warning=f"{OFF_PEAK} {STUCK_DOMAIN}",
    ),
    StepTemplate(
        "old-records-off",
        "Remove the old MX, verification and autodiscover records",
        K.DNS,
        dns_groups=("old",),
    ),
    StepTemplate(
        "target-domain-on",
        "Add the domain to the target and publish its verification record",
        K.DNS,
        dns_groups=("verification",),
    ),
    StepTemplate(
        "target-records",
        "Set MX, autodiscover, SPF, DKIM and DMARC records",
        K.DNS,
        "Stick to the TTL values the target recommends.",
        dns_groups=("mx", "autodiscover", "spf", "dkim", "dmarc", "custom"),
    ),
    StepTemplate(
        "sip-records",
        "Set the SIP SRV records (only where Lync/Skype is used)",
        K.DNS,
        "SRV forms differ between DNS providers; the check compares port and target.",
        dns_groups=("sip",),
    ),
    StepTemplate(
        "target-users-on", "Move users onto the domain in the target", warning=OWN_ACCOUNT
    ),
    StepTemplate(
        "mail-flow",
        "Confirm mail flow: send out, and receive from outside",
        warning="Sending works at once; receiving can take a while. " + STUCK_DOMAIN,
    ),
    StepTemplate("delta", "Run the delta pass", K.DELTA, pass_kind="delta"),
    StepTemplate(
        "old-client-off",
        "Remove the old client components (sign-in assistant, old chat and meeting clients)",
        K.PER_USER,
    ),
    StepTemplate(
        "outlook-profile", "Create a new Outlook profile and make it the default", K.PER_USER
    ),
    StepTemplate(
        "final-delta",
        "Final delta pass, once mail stops arriving at the source",
        K.DELTA,
        pass_kind="delta",
    ),
    StepTemplate("close", "Close the project and export the report"),
)


def ensure_checklist(project: Project) -> None:
    """Give a project the template's steps, once."""
    with transaction.atomic():
        if Project.objects.select_for_update().get(pk=project.pk).cutover_steps.exists():
            return
        CutoverStep.objects.bulk_create(
            CutoverStep(
                project=project,
                position=position,
                key=t.key,
                title=t.title,
                kind=t.kind,
                warning=t.warning,
                dns_groups=list(t.dns_groups),
                pass_kind=t.pass_kind,
            )
            for position, t in enumerate(TEMPLATE, start=1)
        )


def step_counts(project_ids) -> dict[int, tuple[int, int]]:
    """(done, total) of each project's checklist, in one query. A project whose checklist
    has no steps yet gets the template's when it is first opened (``ensure_checklist``), so it
    counts those: "0 / 16", never "0 / 0"."""
    rows = (
        CutoverStep.objects.filter(project__in=project_ids)
        .order_by()
        .values("project")
        .annotate(total=Count("pk"), done=Count("pk", filter=Q(done_at__isnull=False)))
    )
    counts = {row["project"]: (row["done"], row["total"]) for row in rows}
    return {pk: counts.get(pk, (0, len(TEMPLATE))) for pk in project_ids}


def passes_done(step: CutoverStep) -> bool:
    """Every mailbox's latest pass of the step's kind (since the button, for delta) is done.
    Asked in the database: the page asks it on every poll, and a project may have 100,000
    mailboxes."""
    passes = MailboxPass.objects.filter(mailbox=OuterRef("pk"), kind=step.pass_kind)
    if step.kind == K.DELTA:
        if step.passes_started_at is None:
            return False
        passes = passes.filter(started_at__gte=step.passes_started_at)
    latest = Subquery(passes.order_by("-started_at", "-id").values("state")[:1])
    mailboxes = step.project.mailboxes.annotate(latest=latest)
    # No pass at all leaves ``latest`` NULL, which a plain "not done" would not match.
    pending = mailboxes.filter(Q(latest__isnull=True) | ~Q(latest=MailboxPass.State.DONE))
    return mailboxes.exists() and not pending.exists()


def dns_blocking(step: CutoverStep, checks: list, domain_count: int) -> list[str]:
    """Why a DNS step cannot tick yet, from the newest check of each domain."""
    if not domain_count:
        return ["the project has no domains"]
    if len(checks) < domain_count:
        return ["no DNS check has run yet for every domain"]
    groups = set(step.dns_groups)
    has_records = DnsRecord.objects.filter(
        domain__project=step.project_id, group__in=groups
    ).exists()
    if not has_records and not groups <= {"ttl", "spf", "dmarc"}:
        return ["no records to check for this step"]
    return [reason for check in checks for reason in check.blocking(groups)]


def per_user_done(steps) -> dict[int, int]:
    """How many mailboxes each per-user step is done for, in one query."""
    rows = (
        MailboxStep.objects.filter(step__in=steps, done_at__isnull=False)
        .order_by()
        .values("step")
        .annotate(done=Count("pk"))
    )
    return {row["step"]: row["done"] for row in rows}


def mailboxes_in_state(mailboxes, step: CutoverStep, done: bool):
    """``mailboxes`` whose part of the per-user ``step`` is done, or not done yet."""
    parts = MailboxStep.objects.filter(step=step, mailbox=OuterRef("pk"), done_at__isnull=False)
    return mailboxes.filter(Exists(parts) if done else ~Exists(parts))


def mailboxes_done(step: CutoverStep) -> bool:
    total = step.project.mailboxes.count()
    done = step.mailbox_steps.filter(done_at__isnull=False).count()
    return total > 0 and done == total


def auto_tick(project: Project) -> list[CutoverStep]:
    """Tick the automatic steps whose condition now holds; returns the steps ticked."""
    domains = list(project.domains.all())
    checks = list(DnsCheck.objects.latest_per_domain(domains).with_results())
    ticked = []
    for step in project.cutover_steps.filter(done_at__isnull=True).select_related("project"):
        if step.kind == K.DNS:
            ready = not dns_blocking(step, checks, len(domains))
        elif step.kind in (K.COPY, K.DELTA):
            ready = passes_done(step)
        elif step.kind == K.PER_USER:
            ready = mailboxes_done(step)
        else:
            continue
        if ready:
            step.tick(None, "ticked itself: its checks passed")
            ticked.append(step)
    return ticked


# What a per-user step means to the person it is done for, in plain words (end-user page).
ENDUSER_HELP = {
    "old-client-off": "Your IT team removes old programs (the sign-in assistant, old chat and "
    "meeting clients) so they stop connecting to the old system. Nothing for you to do unless "
    "they ask.",
    "outlook-profile": "Outlook gets a new profile that opens your new mailbox. After it, Outlook "
    "shows the mail already copied there; if it asks you to sign in, use your new address.",
}
