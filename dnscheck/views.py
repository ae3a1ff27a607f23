"""The propagation grid (records × servers, live during cutover) and the records it checks."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django_htmx.http import HttpResponseStopPolling

from audit import log as audit
from projects.access import get_project_for_user
from projects.cutover import auto_tick
from projects.models import CutoverStep, Project, Tenant
from projects.views.cutover import post_after_access

from .checker import CheckError
from .models import DnsCheck, DnsRecord
from .records import MATCHES, RECORD_TYPES, InvalidDomain, normalize_expected, value_problem
from .services import (
    check_domain,
    check_project,
    ensure_default_records,
    fetch_tenant_records,
    record_current_as_old,
    split_dns_servers,
    target_kind,
)


class RecordForm(forms.ModelForm):
    class Meta:
        model = DnsRecord
        fields = ["domain", "name", "rtype", "value", "match", "present", "changes"]
        labels = {"present": "Must be present (untick: an old record that must be gone)"}

    def __init__(self, *args, project, domains=None, **kwargs):
        """``domains``: the project's, when the caller has them already."""
        super().__init__(*args, **kwargs)
        field = self.fields["domain"]
        field.queryset = project.domains.all()
        domains = list(field.queryset) if domains is None else domains
        if len(domains) == 1:
            # Nothing to choose: no "---------" to pick by mistake.
            field.empty_label, field.initial = None, domains[0].pk
        self.fields["rtype"].choices = [(t, t) for t in RECORD_TYPES]
        self.fields["match"].choices = [(m, m) for m in MATCHES]

    def clean_name(self):
        name = self.cleaned_data["name"].strip().rstrip(".") or "@"
        if " " in name:
            raise forms.ValidationError("A name has no spaces; use @ for the domain itself.")
        return name

    def clean(self):
        data = super().clean()
        value, match = data.get("value", "").strip(), data.get("match")
        if not value and match != "any":
            self.add_error("value", "A value is needed (or match any value).")
        elif match not in ("prefix", "contains", "any"):
            for form in value.split("|") if match == "one_of" else [value]:
                problem = value_problem(data.get("rtype"), form)
                if problem:
                    self.add_error("value", problem)
                    break
        return data

    def save(self, commit=True):
        record = super().save(commit=False)
        record.group = DnsRecord.Group.CUSTOM if record.present else DnsRecord.Group.OLD
        if record.rtype != "TXT" or record.match == "any":
            record.value = normalize_expected(record.rtype, record.value, record.match)
        record.save()
        return record


def propagation_context(project: Project, form=None) -> dict:
    domains = list(project.domains.select_related("tenant_fetch").prefetch_related("dns_records"))
    checks = {c.domain_id: c for c in DnsCheck.objects.latest_per_domain(domains).with_results()}
    return {
        "project": project,
        "domains": [(d, checks.get(d.pk)) for d in domains],
        "polling": project.state == Project.State.CUTOVER,
        "form": form or RecordForm(project=project, domains=domains),
        "from_tenant": project.target.kind == Tenant.Kind.EXCHANGE_ONLINE,
        "route": target_kind(project.source, project.target),
    }


@login_required
def propagation(request, project_id):
    project = get_project_for_user(request, project_id)
    if request.htmx:
        context = propagation_context(project)
        html = render_to_string("dnscheck/propagation.html#grid", context, request)
        # Outside cutover nothing re-checks: tell htmx to stop asking (status 286).
        return (HttpResponse if context["polling"] else HttpResponseStopPolling)(html)
    for domain in project.domains.select_related("project__source", "project__target"):
        ensure_default_records(domain)
    return render(request, "dnscheck/propagation.html", propagation_context(project))


@post_after_access
def check_now(request, project):
    checks = check_project(project)
    ticked = auto_tick(project)
    failed = [c for c in checks if c.error]
    for check in failed:
        messages.error(request, f"{check.domain}: {check.error}")
    # A DNS step ticks only when this check asked about its records and found them all as
    # they must be (present, or gone for the old provider's): each one is news.
    in_place = [step.title for step in ticked if step.kind == CutoverStep.Kind.DNS]
    text = f"Checked {len(checks)} domain(s)."
    if in_place:
        text += f" {len(in_place)} checklist step(s) ticked themselves: {'; '.join(in_place)}."
    audit.record(request, project, audit.Action.DNS_CHECKED, text)
    messages.info(request, text)
    return redirect("dns_propagation", project.pk)


@post_after_access
def tenant_records(request, project):
    """Read the domain's records from the target tenant again, then check them at once (the
    results of the records replaced went with them)."""
    domain = get_object_or_404(
        project.domains.select_related("project__source", "project__target"),
        pk=request.POST.get("domain") or 0,
    )
    fetch = fetch_tenant_records(domain)
    detail = f"Fetched the records of {domain} from the tenant: {fetch.error or fetch.records}"
    audit.record(request, project, audit.Action.DNS_CHANGED, detail)
    if not fetch.error:
        check_domain(domain)
    if request.htmx:
        context = propagation_context(project)
        context["domains"] = [(d, c) for d, c in context["domains"] if d.pk == domain.pk]
        return render(request, "dnscheck/propagation.html#records", context)
    if fetch.error:
        messages.error(request, f"{domain}: {fetch.error}")
    else:
        messages.success(request, f"{domain}: {fetch.records} record(s) from the tenant.")
    return redirect("dns_propagation", project.pk)


@post_after_access
def record_add(request, project):
    form = RecordForm(request.POST, project=project)
    if not form.is_valid():
        return render(request, "dnscheck/propagation.html", propagation_context(project, form))
    record = form.save()
    detail = f"Added the record {record} for {record.domain}"
    audit.record(request, project, audit.Action.DNS_CHANGED, detail)
    messages.success(request, f"Added {record} for {record.domain}.")
    return redirect("dns_propagation", project.pk)


@post_after_access
def record_remove(request, project):
    record = get_object_or_404(
        DnsRecord, domain__project=project, pk=request.POST.get("record") or 0
    )
    record.delete()
    detail = f"Removed the record {record} of {record.domain}"
    audit.record(request, project, audit.Action.DNS_CHANGED, detail)
    messages.success(request, f"Removed {record}.")
    return redirect("dns_propagation", project.pk)


@post_after_access
def sip(request, project):
    """Expect the legacy SIP SRV records (Lync/Skype) for a domain, or stop expecting them."""
    domain = get_object_or_404(project.domains, pk=request.POST.get("domain") or 0)
    sip = request.POST.get("sip") == "1"
    ensure_default_records(domain, sip=sip)
    detail = f"{'Expecting' if sip else 'Not expecting'} the SIP records of {domain}"
    audit.record(request, project, audit.Action.DNS_CHANGED, detail)
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
        detail = f"Recorded what {domain} serves as its old records: {names}"
        audit.record(request, project, audit.Action.DNS_CHANGED, detail)
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
        detail = f"Set the servers asked about {domain}: {domain.nameservers or 'its NS records'}"
        audit.record(request, project, audit.Action.DNS_CHANGED, detail)
        messages.success(request, f"{domain}: asking {domain.nameservers or 'its NS records'}.")
    return redirect("dns_propagation", project.pk)
