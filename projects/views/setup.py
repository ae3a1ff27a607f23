"""Setting a project up: the project and its tenants, connection tests, the mailbox list."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import Http404
from django.shortcuts import redirect, render
from django_htmx.http import HttpResponseStopPolling

from audit import log as audit
from mailboxes.csvio import (
    SAMPLE,
    CsvImportError,
    csv_attachment,
    export_mailboxes,
    import_mailboxes,
)
from mailboxes.models import FolderMapping

from ..access import SAFE_METHODS, get_project_for_user
from ..cutover import ensure_checklist
from ..forms import MailboxImportForm, ProjectForm, TenantForm, draft
from ..models import Domain, Project, Role
from ..tasks import check_tenant

SIDES = ("source", "target")


def _save_project(form, source_form, target_form, user) -> Project:
    with transaction.atomic():
        project = form.save(commit=False)
        created = project.pk is None
        project.source = source_form.save()
        project.target = target_form.save()
        project.save()
        if created:
            # The checklist exists with the project, so its count is right from the start.
            ensure_checklist(project)
            project.members.add(user, through_defaults={"role": Role.OWNER})
        names = form.cleaned_data["domains"]
        project.domains.exclude(name__in=names).delete()
        for name in names:
            Domain.objects.get_or_create(project=project, name=name)
        project.folder_mappings.all().delete()
        project.folder_mappings.bulk_create(
            FolderMapping(project=project, source_path=source, target_path=target, exclude=exclude)
            for source, target, exclude in form.cleaned_data["folder_mappings"]
        )
    return project


def _live_kind(request, form, side):
    """The kind select redraws its tenant's fields (htmx); the secret never goes in the URL."""
    form.fields["kind"].widget.attrs.update(
        {
            "hx-get": f"{request.path}?tenant_fields={side}",
            "hx-trigger": "change",
            "hx-target": f"#tenant-{side}",
            "hx-swap": "outerHTML",
            "hx-include": f"#tenant-{side}",
            "hx-params": f"not {side}-secret",
        }
    )
    return form


def _tenant_form(request, data, side, project, drafting=False):
    kwargs = {
        "prefix": side,
        "instance": project and getattr(project, side),
        "staff": request.user.is_staff,
    }
    form = draft(TenantForm, data, **kwargs) if drafting else TenantForm(data, **kwargs)
    return _live_kind(request, form, side)


def _project_form_page(request, project=None):
    side = request.GET.get("tenant_fields")
    if request.method == "GET" and side in SIDES:
        # The kind select changed: that tenant's fields for the new kind, values kept.
        context = {"tenant_form": _tenant_form(request, request.GET, side, project, True)}
        context["side"] = side
        return render(request, "projects/project_form.html#tenant_fields", context)
    data = request.POST if request.method == "POST" else None
    tenant_forms = {side: _tenant_form(request, data, side, project) for side in SIDES}
    form = ProjectForm(data, instance=project)
    # Without JavaScript: "Show fields for this kind", or a kind changed on a form showing
    # another kind's fields, redraws the form for the kinds chosen and saves nothing yet.
    redraw = data is not None and (
        data.get("show_fields") in SIDES or any(f.kind_switched for f in tenant_forms.values())
    )
    if redraw:
        form = draft(ProjectForm, data, instance=project)
        tenant_forms = {side: _tenant_form(request, data, side, project, True) for side in SIDES}
        messages.info(request, "Fill in the fields of the kind chosen; nothing is saved yet.")
    elif data is not None and all(f.is_valid() for f in (form, *tenant_forms.values())):
        created = project is None
        project = _save_project(form, tenant_forms["source"], tenant_forms["target"], request.user)
        audit.record_project_saved(request, project, form, tenant_forms, created)
        messages.success(request, f"Project {project} saved.")
        return redirect(project)
    ctx = {
        "form": form,
        "source_form": tenant_forms["source"],
        "target_form": tenant_forms["target"],
        "project": project,
    }
    return render(request, "projects/project_form.html", ctx)


@login_required
def project_create(request):
    return _project_form_page(request)


@login_required
def project_edit(request, project_id):
    return _project_form_page(request, get_project_for_user(request, project_id, Role.OWNER))


def _tenant(project, side):
    if side not in ("source", "target"):
        raise Http404
    return getattr(project, side)


@login_required
def tenant_check(request, project_id, side):
    """POST starts a connection test in the worker (owners: it uses the credentials); GET
    polls its outcome (HTMX partial)."""
    owner = None if request.method in SAFE_METHODS else Role.OWNER
    project = get_project_for_user(request, project_id, owner)
    tenant = _tenant(project, side)
    if request.method == "POST":
        tenant.request_check()
        audit.record(request, project, audit.Action.TENANT_TESTED, f"Tested the {side} tenant")
        transaction.on_commit(lambda: check_tenant.delay(tenant.pk))
        if not request.htmx:
            messages.info(request, f"Testing the {side} connection…")
            return redirect(project)
    context = {"project": project, "tenant": tenant, "side": side}
    response = render(request, "projects/tenant_check.html", context)
    if request.htmx and request.method == "GET" and not tenant.check_pending:
        response.status_code = HttpResponseStopPolling.status_code
    return response


@login_required
def mailbox_import(request, project_id):
    project = get_project_for_user(request, project_id, Role.OPERATOR)
    form = MailboxImportForm(request.POST or None, request.FILES or None)
    problems = []
    if request.method == "POST" and form.is_valid():
        try:
            result = import_mailboxes(project, form.cleaned_data["file"].read())
        except CsvImportError as exc:
            problems = exc.problems
        else:
            detail = f"Imported mailboxes from a CSV: {result}"
            audit.record(request, project, audit.Action.MAILBOXES_IMPORTED, detail)
            messages.success(request, f"Mailboxes imported: {result}.")
            return redirect(project)
    context = {"project": project, "form": form, "problems": problems}
    return render(request, "projects/mailbox_import.html", context, status=400 if problems else 200)


@login_required
def mailbox_sample(request, project_id):
    """A CSV to start from: every column the import takes, with example rows."""
    project = get_project_for_user(request, project_id)
    response = csv_attachment(project, "mailboxes-sample")
    response.write(SAMPLE)
    return response


@login_required
def mailbox_export(request, project_id):
    project = get_project_for_user(request, project_id)
    audit.record(request, project, audit.Action.EXPORT_DOWNLOADED, "Downloaded the mailbox CSV")
    response = csv_attachment(project, "mailboxes")
    export_mailboxes(project, response)
    return response
