"""The one way to write the audit log: ``record(request, project, action, detail)``.

``request`` is None for what no one clicked (a command, a schedule, the worker): then
``actor_label`` says which. ``detail`` is a sentence naming the object ("Started a delta pass
for 3 mailboxes"); it must never carry a secret: name the fields that changed, not their values.
"""

from django.conf import settings

from .models import AuditEntry

Action = AuditEntry.Action
COMMAND_LINE = "command line"
SCHEDULE = "schedule"
WORKER = "worker"


def remote_addr(request) -> str | None:
    # X-Forwarded-For is whatever the client wrote unless a proxy we run sets it; only then is
    # its last address (the one our proxy appended) the client's.
    if settings.AUDIT_TRUST_X_FORWARDED_FOR:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")[-1].strip()
        if forwarded:
            return forwarded
    return request.META.get("REMOTE_ADDR") or None


def record(request, project, action, detail="", *, actor_label=COMMAND_LINE) -> AuditEntry:
    """Append one entry; ``action`` is an ``Action`` (or its code)."""
    action = Action(action)
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        actor, actor_label = user, user.get_username()
    else:
        actor = None
    return AuditEntry.objects.create(
        project=project,
        actor=actor,
        actor_label=actor_label,
        action=action,
        detail=detail,
        remote_addr=remote_addr(request) if request is not None else None,
    )


def changed(form, leave_out=()) -> str:
    """The labels of the fields ``form`` changed, never their values: some are secrets."""
    names = [name for name in form.changed_data if name not in leave_out]
    return ", ".join(str(form.fields[name].label or name) for name in names)


def record_project_saved(request, project, form, tenant_forms: dict, created: bool) -> None:
    """The project form's save: the project, its state and each tenant, by fields changed."""
    if created:
        record(request, project, Action.PROJECT_CREATED, f"Created the project {project}")
        return
    if "state" in form.changed_data:
        was = project.State(form.initial["state"]).label
        detail = f"Changed the project state from {was} to {project.get_state_display()}"
        record(request, project, Action.PROJECT_STATE, detail)
    fields = changed(form, leave_out=["state"])
    if fields:
        record(request, project, Action.PROJECT_CHANGED, f"Changed the project: {fields}")
    for side, tenant_form in tenant_forms.items():
        if tenant_form.changed_data:
            detail = f"Changed the {side} tenant: {changed(tenant_form)}"
            record(request, project, Action.TENANT_CHANGED, detail)
