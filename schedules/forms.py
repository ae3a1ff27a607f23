from datetime import datetime

from django import forms
from django.utils import timezone

from .models import STATE_CHOICES, RunWindow, Schedule, zone


class ScheduleForm(forms.Form):
    kind = forms.ChoiceField(label="Pass", choices=Schedule.Kind.choices)
    at = forms.DateTimeField(
        label="At (project time)", widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    daily = forms.BooleanField(label="Repeat daily until cutover (deltas)", required=False)
    older_than_days = forms.IntegerField(
        label="Pre-stage: items older than (days)",
        required=False,
        min_value=0,
        max_value=36500,
        help_text="Counted back from the time the pass runs; blank or 0: everything.",
    )
    scope = forms.ChoiceField(
        label="For", choices=Schedule.Scope.choices, initial=Schedule.Scope.ALL
    )
    state = forms.ChoiceField(
        label="State (for “Mailboxes in a state”)",
        choices=[("", "—"), *STATE_CHOICES],
        required=False,
    )
    mailboxes = forms.CharField(
        label="Mailboxes (for “Listed mailboxes”)",
        required=False,
        help_text="Source addresses or ids, comma-separated.",
    )

    def __init__(self, *args, project, **kwargs):
        super().__init__(*args, **kwargs)
        self.project = project

    def clean(self):
        data = super().clean()
        at = data.get("at")
        if at is not None:
            # Entered as the client's wall-clock time, whatever the server's zone.
            data["at"] = at.replace(tzinfo=None).replace(tzinfo=zone(self.project))
            if data["at"] <= timezone.now():
                self.add_error("at", f"That time has passed ({self.project.time_zone}).")
        if data.get("daily"):
            self._check_daily(data)
        if data.get("scope") == Schedule.Scope.STATE and not data.get("state"):
            self.add_error("state", "Choose the state of the mailboxes to run for.")
        if data.get("scope") == Schedule.Scope.LISTED:
            data["mailbox_ids"] = self._listed(data.get("mailboxes", ""))
        return data

    def _check_daily(self, data):
        cutover = self.project.planned_cutover
        if data.get("kind") != Schedule.Kind.DELTA:
            self.add_error("daily", "Only delta passes repeat daily.")
        elif cutover is None:
            self.add_error("daily", "Set the project's planned cutover: daily deltas stop there.")
        elif isinstance(data.get("at"), datetime) and data["at"] >= cutover:
            self.add_error("at", "The first delta must come before the planned cutover.")

    def _listed(self, text: str) -> list[int]:
        names = [part.strip() for part in text.replace("\n", ",").split(",") if part.strip()]
        rows = self.project.mailboxes.values_list("pk", "source_address")
        by_name = {address.lower(): pk for pk, address in rows} | {str(pk): pk for pk, _ in rows}
        unknown = [name for name in names if name.lower() not in by_name]
        if unknown or not names:
            self.add_error("mailboxes", f"Not in this project: {', '.join(unknown) or '(none)'}.")
        return sorted({by_name[name.lower()] for name in names if name.lower() in by_name})

    def save(self, user) -> Schedule:
        data = self.cleaned_data
        return Schedule.objects.create(
            project=self.project,
            kind=data["kind"],
            run_at=data["at"],
            daily=data["daily"],
            older_than_days=(
                data["older_than_days"] if data["kind"] == Schedule.Kind.PRESTAGE else None
            ),
            scope=data["scope"],
            state=data["state"] if data["scope"] == Schedule.Scope.STATE else "",
            mailbox_ids=data.get("mailbox_ids", []),
            created_by=user,
        )


class RunWindowForm(forms.ModelForm):
    class Meta:
        model = RunWindow
        fields = ["starts", "ends", "weekends"]
        widgets = {
            "starts": forms.TimeInput(attrs={"type": "time"}),
            "ends": forms.TimeInput(attrs={"type": "time"}),
        }
        labels = {"weekends": "All of Saturday and Sunday"}

    def clean(self):
        data = super().clean()
        starts, ends = data.get("starts"), data.get("ends")
        if (starts is None) != (ends is None):
            raise forms.ValidationError("Give both the start and the end of the hours.")
        if starts is not None and starts == ends:
            raise forms.ValidationError("The window has no hours: its start equals its end.")
        if starts is None and not data.get("weekends"):
            raise forms.ValidationError("The window has no hours: give hours or weekends.")
        return data
