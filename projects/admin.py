from django.contrib import admin

from .forms import TenantForm
from .models import CutoverStep, Domain, Membership, Project, Tenant


class StaffTenantForm(TenantForm):
    """The admin site is for staff only, who may choose every kind."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, staff=True, **kwargs)


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    form = StaffTenantForm
    list_display = ["id", "kind", "endpoint", "auth_method", "username", "last_check_ok"]
    list_filter = ["kind", "auth_method", "last_check_ok"]
    search_fields = ["endpoint", "username", "impersonation"]


class DomainInline(admin.TabularInline):
    model = Domain
    extra = 0


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["client_name", "state", "planned_cutover", "created"]
    list_filter = ["state"]
    search_fields = ["client_name", "domains__name"]
    raw_id_fields = ["source", "target"]
    inlines = [MembershipInline, DomainInline]


@admin.register(Domain)
class DomainAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "nameservers"]
    search_fields = ["name", "project__client_name"]


@admin.register(CutoverStep)
class CutoverStepAdmin(admin.ModelAdmin):
    list_display = ["title", "project", "position", "kind", "done_at", "done_by"]
    list_filter = ["kind", "project"]
    search_fields = ["title", "project__client_name"]
