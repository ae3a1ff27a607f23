"""The audit page's filter: who, what, and a date range read in the project's time zone."""

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from django import forms
from django.http import QueryDict

from .models import AuditEntry


class AuditFilterForm(forms.Form):
    actor = forms.ChoiceField(label="Who", required=False)
    action = forms.ChoiceField(
        label="What", required=False, choices=[("", "Everything"), *AuditEntry.Action.choices]
    )
    date_from = forms.DateField(
        label="From", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        label="To", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, data, *, project):
        super().__init__(data)
        self.zone = ZoneInfo(project.time_zone)
        actors = project.audit_entries.order_by("actor_label").values_list("actor_label", flat=True)
        self.fields["actor"].choices = [("", "Anyone"), *((a, a) for a in actors.distinct())]

    def _midnight(self, day) -> datetime:
        return datetime.combine(day, time(), tzinfo=self.zone)

    def filter(self, entries):
        """Narrow ``entries``; an invalid form (a hand-edited URL) filters nothing."""
        if not self.is_valid():
            return entries
        data = self.cleaned_data
        if data["actor"]:
            entries = entries.filter(actor_label=data["actor"])
        if data["action"]:
            entries = entries.filter(action=data["action"])
        if data["date_from"]:
            entries = entries.filter(at__gte=self._midnight(data["date_from"]))
        if data["date_to"]:
            # "To" is inclusive: everything before the next day starts in the project's zone.
            entries = entries.filter(at__lt=self._midnight(data["date_to"] + timedelta(days=1)))
        return entries

    def querystring(self) -> str:
        """The active filter as URL parameters, for pagination and the CSV link."""
        if not self.is_valid():
            return ""
        query = QueryDict(mutable=True)
        for name, value in self.cleaned_data.items():
            if value:
                query[name] = str(value)
        return query.urlencode()
