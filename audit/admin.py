from django.contrib import admin

from .models import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """Staff may read the log; nobody edits or removes it (README, "Audit log")."""

    list_display = ["at", "project", "actor_label", "action", "detail", "remote_addr"]
    list_filter = ["action"]
    search_fields = ["detail", "actor_label"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
