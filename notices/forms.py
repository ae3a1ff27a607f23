from django import forms
from django.core.validators import URLValidator

from mailboxes.connectors.base import TransientError
from mailboxes.connectors.reach import ReachError, addresses, url_place
from projects.models import endpoint_reach

from .models import NoticeSettings


class NoticeSettingsForm(forms.ModelForm):
    # Never shown back (it holds the webhook's secret); blank keeps the one saved.
    webhook_url = forms.CharField(
        label="Webhook URL (Slack, Teams; blank keeps the saved one)",
        required=False,
        widget=forms.PasswordInput(render_value=False),
    )
    clear_webhook = forms.BooleanField(label="Remove the webhook", required=False)

    class Meta:
        model = NoticeSettings
        fields = [
            *("auto_planned", "auto_copied", "auto_done", "email_members", "quiet_members"),
            "steps",
        ]
        widgets = {"quiet_members": forms.CheckboxSelectMultiple}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["quiet_members"].queryset = self.instance.project.members.order_by("username")

    def clean_webhook_url(self):
        url = self.cleaned_data["webhook_url"].strip()
        if not url:
            return ""
        URLValidator(schemes=["http", "https"])(url)
        host, port = url_place(url)
        try:
            addresses(endpoint_reach(), host, port)
        except (ReachError, TransientError) as exc:
            raise forms.ValidationError(str(exc)) from exc
        return url

    def save(self, commit=True):
        choices = super().save(commit=False)
        if self.cleaned_data["clear_webhook"]:
            choices.webhook_url = ""
        elif self.cleaned_data["webhook_url"]:
            choices.webhook_url = self.cleaned_data["webhook_url"]
        choices.save()
        self.save_m2m()
        return choices
