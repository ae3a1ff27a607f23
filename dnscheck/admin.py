from django.contrib import admin

from .models import DnsCheck, DnsRecord, DnsResult, TenantFetch


@admin.register(DnsRecord)
class DnsRecordAdmin(admin.ModelAdmin):
    list_display = [
        "domain",
        "group",
        "rtype",
        "name",
        "value",
        "match",
        "present",
        "changes",
        "optional",
        "source",
        "fetched_at",
    ]
    list_filter = ["group", "rtype", "present", "optional", "source"]
    search_fields = ["domain__name", "name", "value"]
    list_select_related = ["domain"]


@admin.register(DnsCheck)
class DnsCheckAdmin(admin.ModelAdmin):
    list_display = ["domain", "checked_at", "ok", "error"]
    list_filter = ["ok"]
    search_fields = ["domain__name"]
    list_select_related = ["domain"]


@admin.register(DnsResult)
class DnsResultAdmin(admin.ModelAdmin):
    list_display = ["record", "server", "role", "verdict", "ttl", "checked_at"]
    list_filter = ["verdict", "role"]
    raw_id_fields = ["dns_check", "record"]
    list_select_related = ["record"]


@admin.register(TenantFetch)
class TenantFetchAdmin(admin.ModelAdmin):
    list_display = ["domain", "attempted_at", "fetched_at", "records", "error"]
    search_fields = ["domain__name"]
    list_select_related = ["domain"]
