from django.conf import settings
from django.db import models

from projects.models import Project


class AppendOnly(Exception):
    """An audit entry is written once and never changed or removed by the app."""


class AuditEntryQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnly("audit entries cannot be changed")

    def delete(self):
        raise AppendOnly("audit entries cannot be deleted")


class AuditEntry(models.Model):
    """One change to a project. ``actor_label`` keeps the username (or "schedule", "command
    line", "worker") so the entry still says who after the user is gone; ``detail`` is a sentence
    naming the object and never holds a secret."""

    class Action(models.TextChoices):
        PROJECT_CREATED = "project_created", "Project created"
        PROJECT_CHANGED = "project_changed", "Project changed"
        TENANT_CHANGED = "tenant_changed", "Tenant changed"
        TENANT_TESTED = "tenant_tested", "Tenant connection tested"
        PROJECT_STATE = "project_state", "Project state changed"
        PASS_STARTED = "pass_started", "Pass started"
        PASS_PAUSED = "pass_paused", "Pass paused"
        PASS_RESUMED = "pass_resumed", "Pass resumed"
        PASS_RETRIED = "pass_retried", "Failed mailboxes retried"
        LOGINS_TESTED = "logins_tested", "Logins tested"
        DISCOVERY_STARTED = "discovery_started", "Discovery started"
        VERIFICATION_STARTED = "verification_started", "Verification started"
        MAILBOXES_IMPORTED = "mailboxes_imported", "Mailboxes imported"
        MAILBOX_ADDED = "mailbox_added", "Mailbox added"
        MAILBOX_EDITED = "mailbox_edited", "Mailbox edited"
        MAILBOX_DELETED = "mailbox_deleted", "Mailbox deleted"
        CHECKLIST_TICKED = "checklist_ticked", "Checklist ticked"
        CHECKLIST_EDITED = "checklist_edited", "Checklist edited"
        LINK_MADE = "link_made", "End-user link made"
        LINK_REVOKED = "link_revoked", "End-user link revoked"
        NOTICE_SENT = "notice_sent", "Notification sent"
        NOTICES_CHANGED = "notices_changed", "Notification settings changed"
        EXPORT_DOWNLOADED = "export_downloaded", "Export downloaded"
        DNS_CHANGED = "dns_changed", "DNS records changed"
        DNS_CHECKED = "dns_checked", "DNS checked"
        SCHEDULE_ADDED = "schedule_added", "Schedule added"
        SCHEDULE_REMOVED = "schedule_removed", "Schedule removed"
        MEMBER_INVITED = "member_invited", "Member invited"
        MEMBER_JOINED = "member_joined", "Member joined"
        MEMBER_REMOVED = "member_removed", "Member removed"
        MEMBER_ROLE_CHANGED = "member_role_changed", "Member role changed"

    project = models.ForeignKey(Project, models.CASCADE, related_name="audit_entries")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    actor_label = models.CharField(max_length=150)
    at = models.DateTimeField(auto_now_add=True, db_index=True)
    action = models.CharField(max_length=30, choices=Action.choices)
    detail = models.TextField(blank=True)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-pk"]
        verbose_name_plural = "audit entries"

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor_label}: {self.detail or self.action}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnly("audit entries cannot be changed")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnly("audit entries cannot be deleted")
