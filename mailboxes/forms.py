"""Adding and editing one mailbox: its addresses and its own accounts (README "Who logs in")."""

from django import forms
from django.core.exceptions import ValidationError

from projects.fields import is_unreadable

from .connectors.base import APP_KINDS
from .identity import conflicts
from .models import SIDES, Mailbox

PASSWORD_WIDGET = forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"})


class MailboxForm(forms.ModelForm):
    """Passwords are write-only: never rendered back; empty keeps the stored one, and a
    checkbox per side clears it. A side whose tenant acts for every mailbox (Graph, maildir)
    takes no login of its own, so its login fields are left out."""

    source_password = forms.CharField(label="Source password", required=False)
    target_password = forms.CharField(label="Target password", required=False)
    clear_source_password = forms.BooleanField(
        label="Clear the stored source password", required=False
    )
    clear_target_password = forms.BooleanField(
        label="Clear the stored target password", required=False
    )

    class Meta:
        model = Mailbox
        fields = [
            "source_address",
            "target_address",
            "display_name",
            "source_login",
            "source_password",
            "target_login",
            "target_password",
        ]
        labels = {"source_login": "Source login", "target_login": "Target login"}

    def __init__(self, *args, project, **kwargs):
        super().__init__(*args, **kwargs)
        self.project = project
        self.instance.project = project  # login_label reads the tenants without a query
        # Kept aside before the form writes to the instance; never put in ``initial``.
        self._stored = {side: self.instance.login(side)[1] for side in SIDES}
        self.sides = []
        for side in SIDES:
            self.initial.pop(f"{side}_password", None)
            tenant = project.source if side == "source" else project.target
            if tenant.kind in APP_KINDS:
                for name in (f"{side}_login", f"{side}_password", f"clear_{side}_password"):
                    del self.fields[name]
                continue
            self.sides.append(side)
            stored = bool(self._stored[side]) or is_unreadable(self._stored[side])
            password = self.fields[f"{side}_password"]
            password.widget = PASSWORD_WIDGET
            if is_unreadable(self._stored[side]):
                password.help_text = (
                    "A password is stored but cannot be decrypted (FIELD_ENCRYPTION_KEY is not "
                    "the key it was saved with): enter it again."
                )
            elif stored:
                password.help_text = "A password is stored (encrypted); leave empty to keep it."
            else:
                password.help_text = "Only with the login above; empty: the tenant's password."
            self.fields[f"{side}_login"].help_text = (
                "Empty: the tenant's rule (its master or admin account acting for the mailbox, "
                "else the mailbox's address with the tenant's password)."
            )
            if not stored:
                del self.fields[f"clear_{side}_password"]

    def clean_source_address(self):
        return self.cleaned_data["source_address"].strip().lower()

    def clean_target_address(self):
        return self.cleaned_data["target_address"].strip().lower()

    def clean(self):
        cleaned = super().clean()
        for side in self.sides:
            login = (cleaned.get(f"{side}_login") or "").strip()
            cleaned[f"{side}_login"] = login
            if cleaned.get(f"{side}_password") and not login:
                self.add_error(
                    f"{side}_login",
                    "A password needs the login it belongs to (the address itself if that is "
                    "the login).",
                )
            if cleaned.get(f"{side}_password") and cleaned.get(f"clear_{side}_password"):
                self.add_error(
                    f"clear_{side}_password",
                    "Either enter a new password or clear the stored one, not both.",
                )
        self._check_unique(cleaned)
        if not self.errors:
            self._check_identity()
        return cleaned

    def _others(self):
        return self.project.mailboxes.exclude(pk=self.instance.pk)

    def _check_unique(self, cleaned) -> None:
        for field in ("source_address", "target_address"):
            address = cleaned.get(field)
            if address and self._others().filter(**{f"{field}__iexact": address}).exists():
                side = field.split("_")[0]
                self.add_error(field, f"Another mailbox of this project has the {side} {address}.")

    def _check_identity(self) -> None:
        """Refuse what would make two mailboxes read or write one account (``identity``)."""
        candidate = self._candidate()
        rows = [*self._others(), candidate]
        ours = {candidate.source_address, candidate.target_address}
        found = [c.message for c in conflicts(self.project, rows) if c.addresses & ours]
        if found:
            raise ValidationError(found)

    def _candidate(self) -> Mailbox:
        """The mailbox as it would be saved (passwords left out: no account depends on them)."""
        data = self.cleaned_data
        candidate = Mailbox(
            project=self.project,
            source_address=data.get("source_address", ""),
            target_address=data.get("target_address", ""),
        )
        for side in SIDES:
            login = data[f"{side}_login"] if side in self.sides else self.instance.login(side)[0]
            setattr(candidate, f"{side}_login", login)
        return candidate

    def login_labels(self) -> list[tuple[str, str]]:
        """Per side, who logs in by the rule: for the values typed, else for the stored ones."""
        data = self.cleaned_data if self.is_bound and hasattr(self, "cleaned_data") else {}
        mailbox = Mailbox(project=self.project)
        for side in SIDES:
            address = data.get(f"{side}_address") or self.instance.address(side)
            setattr(mailbox, f"{side}_address", address or f"the {side} address")
            login = data.get(f"{side}_login", self.instance.login(side)[0])
            setattr(mailbox, f"{side}_login", login)
        return [(side, mailbox.login_label(side)) for side in SIDES]

    # What decides who logs in where: changing any of it makes the last login test stale.
    ACCOUNT_FIELDS = (
        "source_address",
        "target_address",
        "source_login",
        "target_login",
        "source_password",
        "target_password",
        "clear_source_password",
        "clear_target_password",
    )
    LOGIN_CHECK_FIELDS = (
        "login_check_requested_at",
        "login_checked_at",
        "login_check_ok",
        "login_check_message",
    )

    def written_fields(self) -> dict:
        """The saved mailbox's values of every field this form may change (after ``save``)."""
        names = [name for name in self._meta.fields if name in self.fields]
        names += [f"{side}_password" for side in self.sides]
        names += self.LOGIN_CHECK_FIELDS
        return {name: getattr(self.instance, name) for name in dict.fromkeys(names)}

    def save(self, commit=True):
        mailbox = super().save(commit=False)
        if set(self.changed_data) & set(self.ACCOUNT_FIELDS):
            for name in self.LOGIN_CHECK_FIELDS:
                setattr(mailbox, name, "" if name == "login_check_message" else None)
        for side in SIDES:
            if side not in self.sides:
                continue
            field = f"{side}_password"
            new = self.cleaned_data.get(field)
            if not mailbox.login(side)[0] or self.cleaned_data.get(f"clear_{side}_password"):
                # No own login: a stored password would never be used again.
                setattr(mailbox, field, "")
            elif not new:
                setattr(mailbox, field, self._stored[side])
        if commit:
            mailbox.save()
        return mailbox
