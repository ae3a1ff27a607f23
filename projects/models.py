import hashlib
import secrets
import zoneinfo
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone

from mailboxes.connectors import ConnectorError, Endpoint
from mailboxes.connectors.base import Reach
from mailboxes.connectors.reach import ReachError, addresses, maildir_folder, url_place

from .fields import EncryptedTextField


def endpoint_reach() -> Reach:
    """Where tenants' connectors may go, from the settings (README, "Production")."""
    return Reach(
        allow_local=settings.ALLOW_LOCAL_ENDPOINTS,
        services=tuple(settings.SERVICE_HOSTS),
        maildir_root=str(settings.MAILDIR_ROOT),
    )


class Tenant(models.Model):
    """One side of a migration: a mail system and how to log in to it."""

    class Kind(models.TextChoices):
        EWS = "ews", "Exchange (EWS)"
        EXCHANGE_ONLINE = "exchange_online", "Exchange Online (Microsoft Graph)"
        GOOGLE = "google", "Google Workspace (Gmail API)"
        IMAP = "imap", "IMAP"
        MAILDIR = "maildir", "Local maildir"

    class Security(models.TextChoices):
        TLS = "tls", "TLS"
        STARTTLS = "starttls", "STARTTLS"
        PLAIN = "plain", "None (plain text)"

    class AuthMethod(models.TextChoices):
        BASIC = "basic", "Basic / LOGIN"
        NTLM = "ntlm", "NTLM"
        OAUTH2 = "oauth2", "OAuth2 client credentials"

    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.IMAP)
    endpoint = models.CharField(
        max_length=500,
        blank=True,
        help_text="IMAP host, EWS URL (empty: autodiscover), Graph base URL, or maildir folder.",
    )
    port = models.PositiveIntegerField(null=True, blank=True)
    security = models.CharField(max_length=10, choices=Security.choices, default=Security.TLS)
    auth_method = models.CharField(
        max_length=10, choices=AuthMethod.choices, default=AuthMethod.BASIC
    )
    username = models.CharField(max_length=254, blank=True)
    secret = EncryptedTextField(blank=True, help_text="Password or OAuth2 client secret.")
    # Graph certificate credentials: the certificate's private key (PEM), encrypted like the
    # secret; its thumbprint is the certificate_thumbprint option.
    certificate_key = EncryptedTextField(blank=True)
    oauth_tenant_id = models.CharField("OAuth2 tenant id", max_length=100, blank=True)
    oauth_client_id = models.CharField("OAuth2 client id", max_length=100, blank=True)
    oauth_authority = models.URLField(
        "OAuth2 authority",
        blank=True,
        help_text="Only for sovereign clouds: the login endpoint, e.g. "
        "https://login.microsoftonline.us/<tenant id>.",
    )
    impersonation = models.CharField(
        max_length=254,
        blank=True,
        help_text="Admin account that acts for each mailbox (EWS impersonation, IMAP master user).",
    )
    verify_tls = models.BooleanField(default=True)
    options = models.JSONField(
        "connector options",
        default=dict,
        blank=True,
        help_text='Advanced, per connector, e.g. {"ca_file": "/etc/ssl/corp-ca.pem", '
        '"concurrency": 4, "timeout": 60}.',
    )
    check_requested_at = models.DateTimeField(null=True, blank=True)
    last_check_at = models.DateTimeField(null=True, blank=True)
    last_check_ok = models.BooleanField(null=True)
    last_check_message = models.TextField(blank=True)

    def __str__(self):
        return f"{self.get_kind_display()} {self.endpoint or '(autodiscover)'}"

    def endpoint_config(self) -> Endpoint:
        """The plain connector settings, secrets included (in memory only)."""
        return Endpoint(
            kind=self.kind,
            host=self.endpoint,
            port=self.port,
            security=self.security,
            auth_method=self.auth_method,
            username=self.username,
            secret=self.secret,
            oauth_tenant_id=self.oauth_tenant_id,
            oauth_client_id=self.oauth_client_id,
            oauth_authority=self.oauth_authority,
            impersonation=self.impersonation,
            verify_tls=self.verify_tls,
            options=dict(self.options or {}),
            certificate_key=self.certificate_key,
            reach=endpoint_reach(),
        )

    def _places(self):
        """(field, host, port) of every server a connector of this tenant connects to."""
        kind = self.kind
        if kind == self.Kind.IMAP and self.endpoint:
            yield "endpoint", self.endpoint, self.port or (993 if self.security == "tls" else 143)
        if kind in (self.Kind.EWS, self.Kind.EXCHANGE_ONLINE, self.Kind.GOOGLE) and self.endpoint:
            yield "endpoint", *url_place(self.endpoint)
        oauth = kind == self.Kind.EXCHANGE_ONLINE or self.auth_method == self.AuthMethod.OAUTH2
        if oauth and self.oauth_authority:
            yield "oauth_authority", *url_place(self.oauth_authority)

    def reach_problems(self) -> dict[str, str]:
        """Field -> why connectors may not go where it points: checked on save, and again by
        the connectors when they connect (the name may resolve elsewhere by then). A name
        that does not resolve yet is let through: the connection test will say so."""
        reach, problems = endpoint_reach(), {}
        if self.kind == self.Kind.MAILDIR:
            try:
                maildir_folder(reach, self.endpoint)
            except ReachError as exc:
                problems["endpoint"] = str(exc)
        for name, host, port in self._places():
            try:
                addresses(reach, host, port)
            except ReachError as exc:
                problems.setdefault(name, f"Refused: {exc}.")
            except ConnectorError:
                pass
        return problems

    @property
    def check_pending(self) -> bool:
        return self.check_requested_at is not None and (
            self.last_check_at is None or self.last_check_at < self.check_requested_at
        )

    def request_check(self) -> None:
        self.check_requested_at = timezone.now()
        self.save(update_fields=["check_requested_at"])

    def record_check(self, ok: bool, message: str) -> None:
        self.last_check_at = timezone.now()
        self.last_check_ok = ok
        self.last_check_message = message
        self.save(update_fields=["last_check_at", "last_check_ok", "last_check_message"])

    @property
    def project(self):
        return Project.objects.filter(Q(source=self) | Q(target=self)).first()


class Role(models.TextChoices):
    """What a member may do in a project; each role may do everything the ones below may."""

    VIEWER = "viewer", "Viewer (read-only)"
    OPERATOR = "operator", "Operator (passes, checklist, notifications)"
    OWNER = "owner", "Owner (members, tenants, credentials)"


ROLE_RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.OWNER: 2}


class ProjectQuerySet(models.QuerySet):
    def for_user(self, user):
        if not user.is_authenticated:
            return self.none()
        if user.is_staff:
            return self
        return self.filter(members=user)

    def with_role(self, user):
        """Annotate ``user_role``: the user's role in each project (staff act as owners), so a
        page asks ``can_operate`` / ``can_own`` without a query per button."""
        role = Membership.objects.filter(project=OuterRef("pk"), user=user.pk).values("role")
        role = Subquery(role[:1])
        return self.annotate(user_role=Coalesce(role, Value(Role.OWNER)) if user.is_staff else role)


def validate_time_zone(name: str) -> None:
    if name not in zoneinfo.available_timezones():
        raise ValidationError(f"{name!r} is not a time zone; use a name like Europe/Berlin.")


class Project(models.Model):
    class State(models.TextChoices):
        PLANNING = "planning", "Planning"
        PRESTAGE = "prestage", "Pre-stage"
        CUTOVER = "cutover", "Cutover"
        CLOSED = "closed", "Closed"

    client_name = models.CharField(max_length=200)
    source = models.OneToOneField(Tenant, models.PROTECT, related_name="source_of")
    target = models.OneToOneField(Tenant, models.PROTECT, related_name="target_of")
    planned_cutover = models.DateTimeField(null=True, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PLANNING)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="projects"
    )
    # Whom the end users ask: shown on their progress page.
    contact_name = models.CharField(max_length=200, blank=True)
    contact_email = models.EmailField(blank=True)
    # Scheduled passes and run windows are set and shown in the client's local time (an IANA
    # name, "Europe/Berlin"), so "22:00" stays 22:00 across daylight-saving changes.
    time_zone = models.CharField(max_length=64, default="UTC", validators=[validate_time_zone])
    created = models.DateTimeField(auto_now_add=True)

    objects = ProjectQuerySet.as_manager()

    class Meta:
        ordering = ["client_name", "id"]

    def __str__(self):
        return self.client_name

    def get_absolute_url(self):
        return reverse("project_detail", args=[self.pk])

    def is_visible_to(self, user) -> bool:
        return user.is_staff or self.members.filter(pk=user.pk).exists()

    def allows(self, role: str) -> bool:
        """Whether the user this project was loaded for (``with_role``) has at least ``role``."""
        return ROLE_RANK.get(getattr(self, "user_role", None), -1) >= ROLE_RANK[role]

    @property
    def can_operate(self) -> bool:
        return self.allows(Role.OPERATOR)

    def import_budget_use(self) -> int | None:
        """How much of Exchange Online's import budget the mailboxes being copied into this
        project's target use right now, in whole percent: the mean, over those mailboxes, of
        each one's most used limit (requests in flight, requests or imported bytes in their
        windows), read from the budgets every worker shares (mailboxes.budget). None for other
        targets, or when none is being copied."""
        if self.target.kind != "exchange_online":
            return None
        from mailboxes.connectors.base import ConnectorError
        from mailboxes.connectors.graph import GraphConnector
        from mailboxes.models import ACTIVE_STATES

        used = []
        copying = self.mailboxes.filter(state__in=ACTIVE_STATES).select_related("project__target")
        for mailbox in copying:
            try:
                connector = GraphConnector(mailbox.endpoint("target"), mailbox.address("target"))
            except ConnectorError:
                continue  # options the connector refuses: the mailbox's page says so
            used.append(connector.budget_use())
        return round(100 * sum(used) / len(used)) if used else None

    @property
    def can_own(self) -> bool:
        return self.allows(Role.OWNER)


class Membership(models.Model):
    """A user's place in a project. Code that only adds members (``members.set``, the
    create_project command) makes owners, as everyone was before roles existed."""

    project = models.ForeignKey(Project, models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.OWNER)

    class Meta:
        ordering = ["user__username"]
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="one_membership_per_user")
        ]

    def __str__(self):
        return f"{self.user} in {self.project} as {self.role}"

    @property
    def is_last_owner(self) -> bool:
        owners = self.project.memberships.filter(role=Role.OWNER)
        return self.role == Role.OWNER and not owners.exclude(pk=self.pk).exists()


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class InvitationQuerySet(models.QuerySet):
    def usable(self):
        return self.filter(accepted_at__isnull=True, expires__gt=timezone.now())


class Invitation(models.Model):
    """A one-time sign-up link for a colleague. Only the token's SHA-256 is stored: whoever
    reads the database (or the outbox) cannot join with it."""

    project = models.ForeignKey(Project, models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.OPERATOR)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, related_name="+"
    )
    token_hash = models.CharField(max_length=64, unique=True)
    created = models.DateTimeField(default=timezone.now)
    expires = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    mailed_at = models.DateTimeField(null=True, blank=True)
    mail_error = models.TextField(blank=True)

    objects = InvitationQuerySet.as_manager()

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self):
        return f"{self.email} to {self.project} as {self.role}"

    @classmethod
    def send(cls, project, email: str, role: str, invited_by) -> tuple["Invitation", str]:
        """A new invitation and its token (shown once); one for the same address that was not
        used yet is replaced, so only the newest link works."""
        token = secrets.token_urlsafe(32)
        project.invitations.filter(email__iexact=email, accepted_at__isnull=True).delete()
        invitation = cls.objects.create(
            project=project,
            email=email,
            role=role,
            invited_by=invited_by,
            token_hash=hash_token(token),
            expires=timezone.now() + timedelta(days=settings.INVITE_EXPIRY_DAYS),
        )
        return invitation, token

    @classmethod
    def find(cls, token: str) -> "Invitation | None":
        return cls.objects.select_related("project").filter(token_hash=hash_token(token)).first()

    @property
    def is_usable(self) -> bool:
        return self.accepted_at is None and self.expires > timezone.now()

    def accept(self, user) -> bool:
        """``user`` joins with the invitation's role (a member already keeps a higher one).
        False when the link was used or expired meanwhile: claimed by one conditional UPDATE,
        so two sign-ups racing on one link cannot both join."""
        now = timezone.now()
        usable = Invitation.objects.filter(pk=self.pk).usable()
        if not usable.update(accepted_at=now, accepted_by=user):
            return False
        self.accepted_at, self.accepted_by = now, user
        membership, created = Membership.objects.get_or_create(
            project=self.project, user=user, defaults={"role": self.role}
        )
        if not created and ROLE_RANK[self.role] > ROLE_RANK[membership.role]:
            membership.role = self.role
            membership.save(update_fields=["role"])
        return True


class Domain(models.Model):
    """A mail domain that moves with the project on cutover day."""

    project = models.ForeignKey(Project, models.CASCADE, related_name="domains")
    name = models.CharField(max_length=253)
    # Split DNS and tests: ask these "host:port" servers instead of the zone's NS records.
    nameservers = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="unique_domain_per_project")
        ]

    def __str__(self):
        return self.name


class CutoverStep(models.Model):
    """One line of the cutover-day checklist."""

    class Kind(models.TextChoices):
        MANUAL = "manual", "Ticked by a person"
        DNS = "dns", "Ticks when the DNS check passes"
        COPY = "copy", "Ticks when every mailbox's pass is done"
        DELTA = "delta", "Starts the delta pass"
        PER_USER = "per_user", "Done per mailbox"

    project = models.ForeignKey(Project, models.CASCADE, related_name="cutover_steps")
    position = models.PositiveIntegerField(default=0)
    title = models.CharField(max_length=200)
    # One line for people who are not specialists: what goes wrong if the step is skipped.
    why = models.CharField("why it matters", max_length=300, blank=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.MANUAL)
    warning = models.TextField(blank=True)
    done_at = models.DateTimeField(null=True, blank=True)
    done_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    note = models.TextField(blank=True)
    # Which template step this is (empty for steps added by hand).
    key = models.CharField(max_length=40, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # DNS steps: the record groups (dnscheck.DnsRecord.group) and rules (spf, dmarc, ttl) whose
    # checks must pass on every server for the step to tick itself.
    dns_groups = models.JSONField(default=list, blank=True)
    # Copy and delta steps: the pass kind (mailboxes.PassKind) every mailbox must finish.
    pass_kind = models.CharField(max_length=10, blank=True)
    # Delta steps: when the button queued the passes; only passes started since then count.
    passes_started_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["project", "position", "id"]

    def __str__(self):
        return self.title

    @property
    def is_done(self) -> bool:
        return self.done_at is not None

    @property
    def is_automatic(self) -> bool:
        return self.kind in (self.Kind.DNS, self.Kind.COPY, self.Kind.DELTA, self.Kind.PER_USER)

    def tick(self, user=None, note: str = "") -> None:
        """Mark done; ``user`` None means the step ticked itself. Recorded as an event."""
        self.done_at = timezone.now()
        self.done_by = user
        self.note = note
        self.save(update_fields=["done_at", "done_by", "note"])
        self.events.create(action=CutoverEvent.Action.DONE, by=user, note=note)

    def untick(self, user, note: str = "") -> None:
        self.done_at = None
        self.done_by = None
        self.note = note
        self.save(update_fields=["done_at", "done_by", "note"])
        self.events.create(action=CutoverEvent.Action.UNDONE, by=user, note=note)

    def set_mailbox_done(self, mailbox, user, done: bool, note: str = "") -> None:
        """Per-user steps: one mailbox's part ticked or un-ticked, recorded as an event."""
        self.mailbox_steps.update_or_create(
            mailbox=mailbox,
            defaults={
                "done_at": timezone.now() if done else None,
                "done_by": user if done else None,
                "note": note,
            },
        )
        action = CutoverEvent.Action.DONE if done else CutoverEvent.Action.UNDONE
        self.events.create(action=action, by=user, note=note, mailbox=mailbox)


class CutoverEvent(models.Model):
    """Who ticked or un-ticked a step (or one mailbox's part of it), when, and why."""

    class Action(models.TextChoices):
        DONE = "done", "Ticked"
        UNDONE = "undone", "Un-ticked"

    step = models.ForeignKey(CutoverStep, models.CASCADE, related_name="events")
    mailbox = models.ForeignKey(
        "mailboxes.Mailbox", models.CASCADE, null=True, blank=True, related_name="+"
    )
    action = models.CharField(max_length=10, choices=Action.choices)
    # None: the step ticked itself (DNS check passed, passes done).
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    at = models.DateTimeField(default=timezone.now)
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self):
        return f"{self.step} {self.action} by {self.by or 'the check'}"


class MailboxStep(models.Model):
    """One mailbox's part of a per-user step (its Outlook profile, its account added again in
    the mail program); removed with its step."""

    step = models.ForeignKey(CutoverStep, models.CASCADE, related_name="mailbox_steps")
    mailbox = models.ForeignKey("mailboxes.Mailbox", models.CASCADE, related_name="cutover_parts")
    done_at = models.DateTimeField(null=True, blank=True)
    done_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    note = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["step", "mailbox"], name="unique_step_per_mailbox")
        ]

    def __str__(self):
        return f"{self.step} for {self.mailbox}"
