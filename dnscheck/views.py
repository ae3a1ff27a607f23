"""The propagation grid (records × servers, live during cutover) and the records it checks."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django_htmx.http import HttpResponseStopPolling

from projects.access import get_project_for_user
from projects.cutover import auto_tick
from projects.models import Project
from projects.views.cutover import post_after_access

from .checker import CheckError
from .models import DnsCheck, DnsRecord
from .records import MATCHES, RECORD_TYPES, InvalidDomain, normalize_value
from .services import (
    check_project,
    ensure_default_records,
    record_current_as_old,
    split_dns_servers,
)


class RecordForm(forms.ModelForm):
    class Meta:
        model = DnsRecord
        fields = ["domain", "name", "rtype", "value", "match", "present", "changes"]
        labels = {"present": "Must be present (untick: an old record that must be gone)"}

    def __init__(self, *args, project, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["domain"].queryset = project.domains.all()
        self.fields["rtype"].choices = [(t, t) for t in RECORD_TYPES]
        self.fields["match"].choices = [(m, m) for m in MATCHES]

    def clean_name(self):
        name = self.cleaned_data["name"].strip().rstrip(".") or "@"
        if " " in name:
            raise forms.ValidationError("A name has no spaces; use @ for the domain itself.")
        return name

    def clean(self):
        data = super().clean()
        if data.get("rtype") == "SRV" and len(data.get("value", "").split()) < 2:
            self.add_error("value", "An SRV value needs at least a port and a target.")
        return data

    def save(self, commit=True):
        record = super().save(commit=False)
        record.group = DnsRecord.Group.CUSTOM if record.present else DnsRecord.Group.OLD
        if record.rtype != "TXT":
            record.value = normalize_value(record.rtype, record.value)
        record.save()
        return record


def propagation_context(project: Project, form=None) -> dict:
    domains = list(project.domains.prefetch_related("dns_records"))
    checks = {c.domain_id: c for c in DnsCheck.objects.latest_per_domain(domains).with_results()}
    return {
        "project": project,
        "domains": [(d, checks.get(d.pk)) for d in domains],
        "polling": project.state == Project.State.CUTOVER,
        "form": form or RecordForm(project=project),
    }


@login_required
def propagation(request, project_id):
    project = get_project_for_user(request, project_id)
    if request.htmx:
        context = propagation_context(project)
        html = render_to_string("dnscheck/propagation.html#grid", context, request)
        # Outside cutover nothing re-checks: tell htmx to stop asking (status 286).
        return (HttpResponse if context["polling"] else HttpResponseStopPolling)(html)
    for domain in project.domains.select_related("project__target"):
        ensure_default_records(domain)
    return render(request, "dnscheck/propagation.html", propagation_context(project))


@post_after_access
def check_now(request, project):
    checks = check_project(project)
    ticked = auto_tick(project)
    failed = [c for c in checks if c.error]
    for check in failed:
        messages.error(request, f"{check.domain}: {check.error}")
    messages.info(
        request,
        f"Checked {len(checks)} domain(s); {len(ticked)} checklist step(s) ticked themselves.",
    )
    return redirect("dns_propagation", project.pk)


@post_after_access
def record_add(request, project):
    form = RecordForm(request.POST, project=project)
    if not form.is_valid():
        return render(request, "dnscheck/propagation.html", propagation_context(project, form))
    record = form.save()
    messages.success(request, f"Added {record} for {record.domain}.")
    return redirect("dns_propagation", project.pk)


@post_after_access
def record_remove(request, project):
    record = get_object_or_404(
        DnsRecord, domain__project=project, pk=request.POST.get("record") or 0
    )
    record.delete()
    messages.success(request, f"Removed {record}.")
    return redirect("dns_propagation", project.pk)


@post_after_access
def sip(request, project):
    """Expect the legacy SIP SRV records (Lync/Skype) for a domain, or stop expecting them."""
    domain = get_object_or_404(project.domains, pk=request.POST.get("domain") or 0)
    ensure_default_records(domain, sip=request.POST.get("sip") == "1")
    return redirect("dns_propagation", project.pk)


@post_after_access
def snapshot(request, project):
    """Record what the domain serves now (before cutover) as the old records that must go."""
    domain = get_object_or_404(project.domains, pk=request.POST.get("domain") or 0)
    try:
        created = record_current_as_old(domain)
    except (InvalidDomain, CheckError, ValueError) as exc:
        messages.error(request, f"{domain}: {exc}")
    else:
        names = ", ".join(str(r) for r in created) or "nothing new"
        messages.success(request, f"{domain}: recorded as old records: {names}.")
    return redirect("dns_propagation", project.pk)


@post_after_access
def nameservers(request, project):
    """Split DNS (or a zone not yet delegated): ask these servers instead of the NS records."""
    domain = get_object_or_404(project.domains, pk=request.POST.get("domain") or 0)
    text = request.POST.get("nameservers", "")
    try:
        servers = split_dns_servers(text)
    except ValueError as exc:
        messages.error(request, f"{domain}: {exc}")
    else:
        domain.nameservers = ",".join(s.address for s in servers)
        domain.save(update_fields=["nameservers"])
        messages.success(request, f"{domain}: asking {domain.nameservers or 'its NS records'}.")
    return redirect("dns_propagation", project.pk)
