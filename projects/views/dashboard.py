"""The consultant's pages: every project at a glance, and one project's mailboxes.

Each page costs a fixed number of queries whatever the number of mailboxes: counters are read
from the rows (``Counters``) and rolled up with aggregates, rates come from grouped samples.
"""

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import F, FloatField
from django.db.models.functions import Cast, NullIf

from mailboxes.charts import current_rate, rates_by, throughput_chart
from mailboxes.filters import MailboxFilterForm
from mailboxes.live import render_live
from mailboxes.models import ProgressSample
from mailboxes.rollup import Totals, mailbox_totals, rollup_annotations

from ..access import get_project_for_user
from ..cutover import step_counts
from ..models import Project

MAILBOXES_PER_PAGE = 50

SORTS = {
    "client": ["client_name", "id"],
    "cutover": [F("planned_cutover").asc(nulls_last=True), "client_name", "id"],
    "errors": [F("error_count").desc(), "client_name", "id"],
    "progress": [F("items_progress").asc(nulls_first=True), "client_name", "id"],
}


class DashboardFilterForm(forms.Form):
    client = forms.CharField(label="Client", required=False, max_length=200)
    state = forms.ChoiceField(
        label="State", required=False, choices=[("", "Any"), *Project.State.choices]
    )
    errors = forms.BooleanField(label="With errors only", required=False)
    sort = forms.ChoiceField(
        label="Sort by",
        required=False,
        choices=[
            ("client", "Client"),
            ("cutover", "Next cutover"),
            ("errors", "Most errors"),
            ("progress", "Least progress"),
        ],
    )

    def filter(self, projects):
        """Narrow and order ``projects``; an invalid form (a hand-edited URL) filters nothing."""
        data = self.cleaned_data if self.is_valid() else {}
        if data.get("client"):
            projects = projects.filter(client_name__icontains=data["client"])
        if data.get("state"):
            projects = projects.filter(state=data["state"])
        if data.get("errors"):
            projects = projects.filter(error_count__gt=0)
        return projects.order_by(*SORTS[data.get("sort") or "client"])


def _with_rollup(projects):
    rollup = rollup_annotations("mailboxes__")
    done = rollup["items_copied"] + rollup["items_skipped"] + rollup["items_failed"]
    return projects.annotate(
        **rollup,
        error_count=rollup["items_failed"] + rollup["mailboxes_failed"],
        items_progress=Cast(done, FloatField()) / NullIf(rollup["items_total"], 0),
    )


@login_required
def home(request):
    form = DashboardFilterForm(request.GET or None)
    projects = list(form.filter(_with_rollup(Project.objects.for_user(request.user))))
    ids = [project.pk for project in projects]
    rates = rates_by(ProgressSample.objects.filter(project__in=ids), "project")
    steps = step_counts(ids)
    for project in projects:
        project.totals = Totals.from_row(project, rates.get(project.pk))
        project.steps_done, project.steps_total = steps.get(project.pk, (0, 0))
    live = any(project.totals.is_live for project in projects)
    context = {"form": form, "projects": projects}
    return render_live(request, "projects/dashboard.html", "projects", context, live)


def _attach_rates(mailboxes):
    rates = rates_by(ProgressSample.objects.filter(mailbox__in=mailboxes), "mailbox")
    for mailbox in mailboxes:
        mailbox.rate = rates.get(mailbox.pk)


@login_required
def project_detail(request, project_id):
    project = get_project_for_user(request, project_id)
    form = MailboxFilterForm(request.GET or None)
    mailboxes = form.filter(project.mailboxes.all())
    page = Paginator(mailboxes, MAILBOXES_PER_PAGE).get_page(request.GET.get("page"))
    page.object_list = list(page.object_list)
    _attach_rates(page.object_list)
    samples = project.progress_samples.all()
    totals = mailbox_totals(project.mailboxes.all(), current_rate(samples))
    selected = {int(pk) for pk in request.GET.getlist("selected") if pk.isdigit()}
    context = {
        "project": project,
        "form": form,
        "filter_query": form.querystring(),
        "page": page,
        "totals": totals,
        "chart": throughput_chart(samples),
        "selected": selected,
        "steps": step_counts([project.pk]).get(project.pk, (0, 0)),
        "import_budget": project.import_budget_use(),
    }
    return render_live(request, "projects/detail.html", "live", context, totals.is_live)
