from django.contrib import admin

from .models import CopiedItem, FolderJob, FolderMapping, ItemError, Mailbox, MailboxPass

COUNTERS = ["items_copied", "items_skipped", "items_failed", "items_total", "bytes_copied"]


@admin.register(Mailbox)
class MailboxAdmin(admin.ModelAdmin):
    list_display = ["source_address", "target_address", "project", "state", *COUNTERS]
    list_filter = ["state", "project"]
    search_fields = ["source_address", "target_address", "display_name"]
    list_select_related = ["project"]


@admin.register(MailboxPass)
class MailboxPassAdmin(admin.ModelAdmin):
    list_display = ["mailbox", "kind", "state", "started_at", "finished_at", *COUNTERS]
    list_filter = ["kind", "state"]
    search_fields = ["mailbox__source_address"]
    raw_id_fields = ["mailbox"]


@admin.register(FolderJob)
class FolderJobAdmin(admin.ModelAdmin):
    list_display = ["mailbox", "source_path", "target_path", "kind", "state", *COUNTERS]
    list_filter = ["state", "kind", "role"]
    search_fields = ["mailbox__source_address", "source_path"]
    raw_id_fields = ["mailbox", "mailbox_pass"]


@admin.register(CopiedItem)
class CopiedItemAdmin(admin.ModelAdmin):
    list_display = ["mailbox", "source_path", "source_id", "target_id", "size", "copied_at"]
    search_fields = ["mailbox__source_address", "source_id", "target_id", "fingerprint"]
    raw_id_fields = ["mailbox"]


@admin.register(ItemError)
class ItemErrorAdmin(admin.ModelAdmin):
    list_display = ["folder_job", "source_id", "code", "reason", "created"]
    list_filter = ["code"]
    search_fields = ["source_id", "reason"]
    raw_id_fields = ["folder_job"]


@admin.register(FolderMapping)
class FolderMappingAdmin(admin.ModelAdmin):
    list_display = ["project", "source_path", "target_path", "exclude"]
    list_filter = ["exclude", "project"]
