"""The project page's mailbox filter, shared by the list and by bulk actions on "all filtered"."""

from django import forms
from django.db.models import Q
from django.http import QueryDict

from .models import ACTIVE_STATES, Mailbox

STATE_GROUPS = {
    "failed": (Mailbox.State.FAILED,),
    "done_with_errors": (Mailbox.State.DONE_WITH_ERRORS,),
    "running": ACTIVE_STATES,
    "paused": (Mailbox.State.PAUSED,),
    "new": (Mailbox.State.NEW,),
    "done": (Mailbox.State.DONE,),
}


class MailboxFilterForm(forms.Form):
    show = forms.ChoiceField(
        label="Show",
        required=False,
        choices=[
            ("", "All"),
            ("failed", "Failed"),
            ("done_with_errors", "Done with errors"),
            ("running", "Queued, listing or copying"),
            ("paused", "Paused"),
            ("new", "Not started"),
            ("done", "Done"),
        ],
    )
    q = forms.CharField(label="Address", required=False, max_length=254)
    errors = forms.BooleanField(label="With errors", required=False)

    def filter(self, mailboxes):
        """Narrow ``mailboxes``; an invalid form (a hand-edited URL) filters nothing."""
        if not self.is_valid():
            return mailboxes
        data = self.cleaned_data
        if data["show"]:
            mailboxes = mailboxes.filter(state__in=STATE_GROUPS[data["show"]])
        if data["q"]:
            term = data["q"].strip()
            mailboxes = mailboxes.filter(
                Q(source_address__icontains=term)
                | Q(target_address__icontains=term)
                | Q(display_name__icontains=term)
            )
        if data["errors"]:
            mailboxes = mailboxes.filter(Q(items_failed__gt=0) | Q(state=Mailbox.State.FAILED))
        return mailboxes

    def querystring(self) -> str:
        """The active filter as URL parameters, to carry it through pagination and actions."""
        if not self.is_valid():
            return ""
        query = QueryDict(mutable=True)
        for name, value in self.cleaned_data.items():
            if value:
                query[name] = "1" if value is True else value
        return query.urlencode()
