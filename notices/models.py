"""Notifications: what end users and consultants are told, and the outbox of every message.

Every message is a ``Notice`` row before it is sent, so nothing is lost: with no mail server
configured (EMAIL_HOST unset) the row is simply kept and read on the outbox page.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from projects.fields import EncryptedTextField
from projects.models import Project

from . import texts


class NoticeKind(models.TextChoices):
    PLANNED = "planned", "Your move is planned"
    COPIED = "copied", "Your mail is copied"
    DONE = "done", "Your move is done"
    CONSULTANT = "consultant", "Consultant notice"


END_USER_KINDS = (NoticeKind.PLANNED, NoticeKind.COPIED, NoticeKind.DONE)


class NoticeSettings(models.Model):
    """A project's notification choices: which events mail end users by themselves, and where
    consultants hear of passes, failures, discovery and DNS."""

    project = models.OneToOneField(Project, models.CASCADE, related_name="notice_settings")
    auto_planned = models.BooleanField("Mail 'planned' when the cutover date is set", default=False)
    auto_copied = models.BooleanField("Mail 'copied' when a mailbox's pass is done", default=False)
    auto_done = models.BooleanField("Mail 'done' when the project is closed", default=False)
    steps = models.TextField(
        "Steps for end users on cutover day (Markdown, the {{ steps }} variable)",
        blank=True,
        default=texts.DEFAULT_STEPS,
    )
    email_members = models.BooleanField("E-mail the project's members", default=True)
    # Per consultant: a member of several projects may want one project's news by webhook only.
    quiet_members = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="+",
        verbose_name="Members who get no e-mail from this project",
    )
    # Slack and Teams webhook URLs carry their own secret: kept encrypted, never shown back.
    webhook_url = EncryptedTextField(blank=True)

    def __str__(self):
        return f"Notifications of {self.project}"

    @classmethod
    def of(cls, project: Project) -> "NoticeSettings":
        return cls.objects.get_or_create(project=project)[0]

    def auto(self, kind: str) -> bool:
        return getattr(self, f"auto_{kind}", False)


class NoticeTemplate(models.Model):
    """A project's own wording of one end-user message; without one the default applies."""

    project = models.ForeignKey(Project, models.CASCADE, related_name="notice_templates")
    kind = models.CharField(max_length=10, choices=NoticeKind.choices)
    subject = models.CharField(max_length=200)
    body = models.TextField(help_text="Markdown; variables like {{ name }} are filled in.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "kind"], name="one_template_per_kind")
        ]

    def __str__(self):
        return f"{self.project}: {self.kind}"

    @classmethod
    def of(cls, project: Project, kind: str) -> "NoticeTemplate":
        """The project's template, or an unsaved one with the default text."""
        found = cls.objects.filter(project=project, kind=kind).first()
        if found is not None:
            return found
        subject, body = texts.DEFAULTS[kind]
        return cls(project=project, kind=kind, subject=subject, body=body)


class NoticeQuerySet(models.QuerySet):
    def unsent(self):
        return self.filter(state__in=(Notice.State.QUEUED, Notice.State.FAILED))


class Notice(models.Model):
    """One message to one recipient, and what became of it (the outbox)."""

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENT = "sent", "Sent"
        KEPT = "kept", "Kept in the outbox (no mail server set)"
        FAILED = "failed", "Failed"

    class Channel(models.TextChoices):
        EMAIL = "email", "E-mail"
        WEBHOOK = "webhook", "Webhook"

    project = models.ForeignKey(Project, models.CASCADE, related_name="notices")
    # End-user messages name their mailbox; consultants' messages have none.
    mailbox = models.ForeignKey(
        "mailboxes.Mailbox", models.CASCADE, null=True, blank=True, related_name="notices"
    )
    kind = models.CharField(max_length=10, choices=NoticeKind.choices)
    # What the message is about ("copied", the cutover date, "pass-12"): one message per
    # mailbox, kind and event, so a re-run or a second worker never mails twice.
    event_key = models.CharField(max_length=100)
    channel = models.CharField(max_length=10, choices=Channel.choices, default=Channel.EMAIL)
    recipient = models.CharField(max_length=254)
    subject = models.CharField(max_length=300)
    text = models.TextField()
    html = models.TextField(blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    created = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    objects = NoticeQuerySet.as_manager()

    class Meta:
        ordering = ["-created", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["mailbox", "kind", "event_key"],
                condition=Q(mailbox__isnull=False),
                name="one_notice_per_mailbox_event",
            ),
            models.UniqueConstraint(
                fields=["project", "kind", "event_key", "channel", "recipient"],
                condition=Q(mailbox__isnull=True),
                name="one_consultant_notice_per_event",
            ),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} to {self.recipient}"

    def get_absolute_url(self):
        return reverse("notice_detail", args=[self.project_id, self.pk])

    @property
    def delivered(self) -> bool:
        return self.state in (self.State.SENT, self.State.KEPT)

    def record(self, state: str, error: str = "") -> None:
        self.state, self.error, self.attempts = state, error, self.attempts + 1
        self.sent_at = timezone.now() if state != self.State.FAILED else self.sent_at
        self.save(update_fields=["state", "error", "attempts", "sent_at"])

    def requeue(self) -> None:
        """Send again on request, even a delivered message: the user lost it."""
        self.state, self.error = self.State.QUEUED, ""
        self.save(update_fields=["state", "error"])


def mail_configured() -> bool:
    return bool(settings.EMAIL_HOST)
