"""The cutover-day checklist: a template per route of the migration (to Microsoft 365, from Google
Workspace to Microsoft 365, to an IMAP host, to Exchange on premises), the steps that tick
themselves (DNS records in place, every mailbox's pass done), and the edits a project makes to
its own list.

The steps and warnings come from a real migration that went wrong on that day: the old provider
kept the domain, inbound mail bounced with relay errors for a day, and only its support (business
hours, North American Central time) could release it.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Q, Subquery

from dnscheck.models import DnsCheck, DnsRecord
from dnscheck.records import WHY
from dnscheck.services import target_kind
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

# The checklists, by the route ``dnscheck.services.target_kind`` names.
ROUTES = {
    "m365": "to Microsoft 365",
    "google-m365": "from Google Workspace to Microsoft 365",
    "imap": "to an IMAP host",
    "exchange": "to Exchange on premises",
}
ALL = frozenset(ROUTES)
MICROSOFT = frozenset({"m365", "google-m365"})
# Google Workspace keeps its primary domain (it cannot be removed without closing the account),
# and its records go in steps of their own: its MX and SPF with Microsoft's, its verification last.
NOT_GOOGLE = ALL - {"google-m365"}


@dataclass(frozen=True)
class StepTemplate:
    key: str
    title: str
    why: str
    kind: str = K.MANUAL
    warning: str = ""
    dns_groups: tuple = ()
    pass_kind: str = ""
    routes: frozenset = ALL
    # Only for some projects: "microsoft_source" (the domain leaves a Microsoft 365 tenant),
    # "sip" (a domain expects the retired Lync/Skype records: the DNS page's SIP option).
    only_if: str = ""


# Every route's steps in cutover-day order; each route takes those naming it.
TEMPLATE = (
    StepTemplate(
        "lower-ttl",
        "Lower the TTL of the records that change at cutover (MX, SPF, …) to 300 s, a day ahead",
        WHY["ttl"],
        K.DNS,
        "Resolvers keep the old records as long as the old TTL says: lower it at least one old "
        "TTL before cutover.",
        dns_groups=("ttl",),
    ),
    StepTemplate(
        "prestage",
        "Pre-stage complete for every mailbox",
        "Copies the mail ahead of the day, so that only what arrives since is left to copy.",
        K.COPY,
        pass_kind="prestage",
    ),
    StepTemplate(
        "freeze",
        "Announce the freeze and the cutover window to users",
        "Users who know when their mail moves expect the pause and use the new system after it.",
        warning=OFF_PEAK,
    ),
    StepTemplate(
        "source-users-off",
        "Move users off the domain in the source (back to its initial domain)",
        "Microsoft 365 lets a domain go only once no user, group or alias uses it any more.",
        warning=OWN_ACCOUNT,
        only_if="microsoft_source",
    ),
    StepTemplate(
        "source-domain-off",
        "Remove the domain from the source",
        "While the old system counts the domain as its own, it keeps the domain's mail to itself.",
        warning=f"{OFF_PEAK} {STUCK_DOMAIN}",
        routes=NOT_GOOGLE,
    ),
    StepTemplate(
        "old-records-off",
        "Remove the old provider's records (its MX and whatever else it had published)",
        WHY["old"],
        K.DNS,
        dns_groups=("old",),
        routes=NOT_GOOGLE,
    ),
    StepTemplate(
        "target-domain-on",
        "Add the domain to the target and publish its verification record",
        WHY["verification"],
        K.DNS,
        dns_groups=("verification",),
        routes=MICROSOFT,
    ),
    StepTemplate(
        "target-domain-accepted",
        "Add the domain to the target and create the users' addresses there",
        "The new system accepts mail only for domains and addresses it knows: without them the "
        "first mail after the switch bounces.",
        routes=frozenset({"imap", "exchange"}),
    ),
    StepTemplate(
        "target-records",
        "Set MX, autodiscover, SPF, DKIM and DMARC records",
        "MX brings new mail to Microsoft 365, autodiscover lets Outlook find the mailbox, and "
        "SPF, DKIM and DMARC keep the mail users send out of spam folders.",
        K.DNS,
        "Stick to the TTL values the target recommends.",
        dns_groups=("mx", "autodiscover", "spf", "dkim", "dmarc", "custom"),
        routes=frozenset({"m365"}),
    ),
    StepTemplate(
        "google-mx-spf",
        "Point MX from Google (smtp.google.com or aspmx.l.google.com) to Microsoft 365, and in "
        "SPF replace include:_spf.google.com with include:spf.protection.outlook.com",
        "MX brings new mail to Microsoft 365 instead of Gmail; while SPF names Google and not "
        "Microsoft, the mail users send from Microsoft 365 lands in spam or is refused.",
        K.DNS,
        "Until MX changes everywhere, some mail still reaches Gmail: the delta passes copy it.",
        dns_groups=("mx", "spf"),
        routes=frozenset({"google-m365"}),
    ),
    StepTemplate(
        "google-autodiscover",
        "Set autodiscover, DKIM and DMARC for Microsoft 365",
        "Autodiscover lets Outlook and phones find the new mailbox by themselves; DKIM and DMARC "
        "keep the mail users send from Microsoft 365 out of spam folders.",
        K.DNS,
        dns_groups=("autodiscover", "dkim", "dmarc", "custom"),
        routes=frozenset({"google-m365"}),
    ),
    StepTemplate(
        "host-records",
        "Point MX at the new host and list it in SPF",
        "MX brings new mail to the new host; SPF keeps the mail users send through it out of "
        "spam folders.",
        K.DNS,
        dns_groups=("mx", "spf", "custom"),
        routes=frozenset({"imap"}),
    ),
    StepTemplate(
        "client-records",
        "Publish the records mail programs use to find the new server (_imaps._tcp and "
        "_submission._tcp SRV, autoconfig)",
        WHY["clients"],
        K.DNS,
        dns_groups=("clients",),
        routes=frozenset({"imap"}),
    ),
    StepTemplate(
        "exchange-records",
        "Point MX and autodiscover at the new Exchange server",
        "MX brings new mail to the new server; autodiscover lets Outlook and phones find the "
        "mailbox by themselves.",
        K.DNS,
        dns_groups=("mx", "autodiscover", "custom"),
        routes=frozenset({"exchange"}),
    ),
    StepTemplate(
        "sip-records",
        "Set the SIP SRV records (only where Lync/Skype is still used)",
        WHY["sip"],
        K.DNS,
        "SRV forms differ between DNS providers; the check compares port and target.",
        dns_groups=("sip",),
        routes=MICROSOFT,
        only_if="sip",
    ),
    StepTemplate(
        "target-users-on",
        "Move users onto the domain in the target",
        "Users sign in and receive mail at the domain's addresses only once their accounts "
        "carry the domain.",
        warning=OWN_ACCOUNT,
        routes=MICROSOFT,
    ),
    StepTemplate(
        "mail-flow",
        "Confirm mail flow: send out, and receive from outside",
        "Proves that mail goes out and comes in through the new system before users find out "
        "that it does not.",
        warning="Sending works at once; receiving can take a while. " + STUCK_DOMAIN,
    ),
    StepTemplate(
        "delta",
        "Run the delta pass",
        "Copies what reached the old mailboxes since the pre-stage.",
        K.DELTA,
        pass_kind="delta",
    ),
    StepTemplate(
        "outlook-profile",
        "Create a new Outlook profile and make it the default",
        "Outlook keeps opening the old mailbox until it has a profile for the new one.",
        K.PER_USER,
        routes=MICROSOFT | {"exchange"},
    ),
    StepTemplate(
        "readd-account",
        "Re-add the account in the mail program",
        "The mail program keeps reading from and sending through the old server until the "
        "account is added again.",
        K.PER_USER,
        routes=frozenset({"imap"}),
    ),
    StepTemplate(
        "final-delta",
        "Final delta pass, once mail stops arriving at the source",
        "Copies the mail that still reached the old system while DNS switched over.",
        K.DELTA,
        pass_kind="delta",
    ),
    StepTemplate(
        "google-verification-off",
        "Last: remove Google's site verification record (google-site-verification TXT) and "
        "whatever else Google had published",
        "Google checks the record to keep the domain verified, and its accounts serve the final "
        "delta pass until then; once it is gone nothing of Google's claims the domain's mail.",
        K.DNS,
        dns_groups=("old",),
        routes=frozenset({"google-m365"}),
    ),
    StepTemplate(
        "close",
        "Close the project and export the report",
        "The report records what was moved and verified, for the client and for later questions.",
    ),
)


def checklist_route(project: Project) -> str:
    """The route whose checklist the project follows. A maildir target, or mail staying on
    its server (route "none"), is looked after like an IMAP host: users add the account again
    in their programs; its DNS steps check what the DNS page lists for it."""
    route = target_kind(project.source, project.target)
    return route if route in ROUTES else "imap"


def _sip_records(project):
    """A domain of the project expects the SIP records (the DNS page's SIP option)."""
    return DnsRecord.objects.filter(domain__project=project, group=DnsRecord.Group.SIP)


def template_for(project: Project, sip: bool | None = None) -> list[StepTemplate]:
    """The steps of the project's route, with the optional ones it asks for; ``sip`` when the
    caller knows already whether it expects SIP records."""
    conditions = {
        "": True,
        # The route back to the source would be "m365": the domain leaves a Microsoft tenant.
        "microsoft_source": target_kind(project.target, project.source) == "m365",
        "sip": _sip_records(project).exists() if sip is None else sip,
    }
    route = checklist_route(project)
    return [t for t in TEMPLATE if route in t.routes and conditions[t.only_if]]


def _new_step(project: Project, template: StepTemplate, position: int) -> CutoverStep:
    return CutoverStep(
        project=project,
        position=position,
        key=template.key,
        title=template.title,
        why=template.why,
        kind=template.kind,
        warning=template.warning,
        dns_groups=list(template.dns_groups),
        pass_kind=template.pass_kind,
    )


def _locked_steps(project: Project):
    """The project's row locked, so that two people editing the list take turns."""
    Project.objects.select_for_update().get(pk=project.pk)
    return project.cutover_steps.all()


def _from_template(project: Project) -> None:
    CutoverStep.objects.bulk_create(
        _new_step(project, t, position) for position, t in enumerate(template_for(project), 1)
    )


def ensure_checklist(project: Project) -> None:
    """Give a project its route's steps, once."""
    with transaction.atomic():
        if not _locked_steps(project).exists():
            _from_template(project)


def reset_checklist(project: Project) -> int:
    """Start the list again from the route's template (the route as it is now): every step goes,
    with its ticks, per-mailbox parts and history. Returns how many steps were dropped."""
    with transaction.atomic():
        steps = _locked_steps(project)
        dropped = steps.count()
        steps.delete()
        _from_template(project)
    return dropped


def missing_steps(project: Project, steps) -> list[StepTemplate]:
    """The route's template steps the checklist does not have (removed, or optional ones
    asked for since it was made): offered to add back."""
    keys = {s.key for s in steps}
    return [t for t in template_for(project) if t.key not in keys]


def add_template_step(project: Project, key: str) -> CutoverStep | None:
    """Add a missing template step back, after the step that comes before it in the template
    (first when none does); None when ``key`` is not one of the missing steps."""
    with transaction.atomic():
        steps = list(_locked_steps(project))
        template = next((t for t in missing_steps(project, steps) if t.key == key), None)
        if template is None:
            return None
        order = [t.key for t in TEMPLATE]
        before = order[: order.index(key)]
        at = max((i + 1 for i, s in enumerate(steps) if s.key in before), default=0)
        step = _new_step(project, template, 0)
        steps.insert(at, step)
        step.save()
        _renumber(steps)
    return step


def move_step(project: Project, step: CutoverStep, up: bool) -> None:
    """Swap a step with the one above (or below) it; the first stays first."""
    with transaction.atomic():
        steps = list(_locked_steps(project))
        index = steps.index(step)
        other = index - 1 if up else index + 1
        if 0 <= other < len(steps):
            steps[index], steps[other] = steps[other], steps[index]
        _renumber(steps)


def _renumber(steps: list[CutoverStep]) -> None:
    for position, s in enumerate(steps, start=1):
        s.position = position
    CutoverStep.objects.bulk_update(steps, ["position"])


def add_step(project: Project, title: str, kind: str, why: str = "") -> CutoverStep:
    """A step of the project's own, at the end of the list."""
    with transaction.atomic():
        last = _locked_steps(project).order_by("-position").first()
        return project.cutover_steps.create(
            title=title, kind=kind, why=why, position=(last.position + 1) if last else 1
        )


def step_counts(project_ids) -> dict[int, tuple[int, int]]:
    """(done, total) of each project's checklist, in one query. A project whose checklist
    has no steps yet (made before steps came with the project) gets its route's template when
    it is first opened (``ensure_checklist``), so it counts those: "0 / 13", never "0 / 0"."""
    steps = "cutover_steps"
    projects = (
        Project.objects.filter(pk__in=project_ids)
        # What the route needs of the tenants, and not their secrets.
        .only(
            *(f"{side}__{field}" for side in ("source", "target") for field in ("kind", "endpoint"))
        )
        .select_related("source", "target")
        .annotate(
            total=Count(steps),
            done=Count(steps, filter=Q(cutover_steps__done_at__isnull=False)),
            sip=Exists(_sip_records(OuterRef("pk"))),
        )
        .order_by()
    )
    counts = {
        p.pk: (p.done, p.total) if p.total else (0, len(template_for(p, sip=p.sip)))
        for p in projects
    }
    return {pk: counts.get(pk, (0, 0)) for pk in project_ids}


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
    """Why a DNS step cannot tick yet, from the newest check of each domain: empty only when
    the checks asked about the step's records and found them all in place."""
    if not domain_count:
        return ["the project has no domains"]
    if len(checks) < domain_count:
        return ["no DNS check has run yet for every domain"]
    groups = set(step.dns_groups)
    reasons = [reason for check in checks for reason in check.blocking(groups)]
    if not reasons and not any(_asked(check, groups) for check in checks):
        return [
            "the DNS check has no records of this step to ask about: add them on the DNS page, "
            "or tick the step by hand"
        ]
    return reasons


def _asked(check: DnsCheck, groups: set) -> bool:
    """The check asked about a record of the step: one that must be there, or one that must be
    gone (what an "old records" step waits for)."""
    return check.covers(groups) or (
        not check.error and any(r.record.group in groups for r in check.results.all())
    )


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
    from notices.events import steps_ticked

    steps_ticked(project, ticked)
    return ticked


# What a per-user step means to the person it is done for, in plain words (end-user page).
ENDUSER_HELP = {
    "readd-account": "Your mail program still opens your old mailbox: remove the account and "
    "add it again with your address and password. The program finds the new server by itself "
    "and shows the mail already copied there.",
    # Lync-era step: only checklists made before it left the template still have it.
    "old-client-off": "Your IT team removes old programs (the sign-in assistant, old chat and "
    "meeting clients) so they stop connecting to the old system. Nothing for you to do unless "
    "they ask.",
    "outlook-profile": "Outlook gets a new profile that opens your new mailbox. After it, Outlook "
    "shows the mail already copied there; if it asks you to sign in, use your new address.",
}
