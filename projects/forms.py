from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import validate_domain_name

from .models import Project, Tenant


class ProjectForm(forms.ModelForm):
    domains = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        help_text="The mail domains that move on cutover day, one per line.",
    )
    folder_mappings = forms.CharField(
        label="Folder mapping",
        widget=forms.Textarea(attrs={"rows": 4}),
        required=False,
        help_text="One per line: <code>Source/Folder =&gt; Target/Folder</code> to rename a "
        "folder and its subfolders, <code>Source/Folder =&gt; -</code> to leave it out. "
        "Paths use <code>/</code> whatever the server's separator.",
    )
    members = forms.ModelMultipleChoiceField(
        queryset=get_user_model().objects.filter(is_active=True).order_by("username"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Who may see and change this project (you stay a member).",
    )

    class Meta:
        model = Project
        fields = ["client_name", "planned_cutover", "state"]
        widgets = {"planned_cutover": forms.DateTimeInput(attrs={"type": "datetime-local"})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["domains"] = "\n".join(d.name for d in self.instance.domains.all())
            self.initial["members"] = list(self.instance.members.all())
            self.initial["folder_mappings"] = "\n".join(
                f"{m.source_path} => {'-' if m.exclude else m.target_path}"
                for m in self.instance.folder_mappings.all()
            )

    def clean_folder_mappings(self):
        """[(source_path, target_path, exclude)], every bad line reported with its number."""
        mappings, problems, seen = [], [], set()
        for number, line in enumerate(self.cleaned_data["folder_mappings"].splitlines(), 1):
            if not line.strip():
                continue
            source, arrow, target = (part.strip() for part in line.partition("=>"))
            if not arrow or not source or not target:
                problems.append(f"Line {number}: write “Source/Folder => Target/Folder” or “=> -”.")
            elif source in seen:
                problems.append(f"Line {number}: {source} is mapped twice.")
            else:
                seen.add(source)
                exclude = target == "-"
                mappings.append((source, "" if exclude else target, exclude))
        if problems:
            raise ValidationError(problems)
        return mappings

    def clean_domains(self):
        names = []
        for line in self.cleaned_data["domains"].splitlines():
            name = line.strip().lower().rstrip(".")
            if not name or name in names:
                continue
            try:
                validate_domain_name(name)
            except ValidationError:
                raise ValidationError(f"{name!r} is not a valid domain name.") from None
            names.append(name)
        return names


class TenantForm(forms.ModelForm):
    """Secrets are write-only: the form never renders the stored value back."""

    secret = forms.CharField(
        label="Password or client secret",
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Leave empty to keep the stored secret.",
    )

    oauth_authority = forms.URLField(
        label="OAuth2 authority",
        required=False,
        assume_scheme="https",
        help_text=Tenant._meta.get_field("oauth_authority").help_text,
    )

    class Meta:
        model = Tenant
        fields = [
            "kind",
            "endpoint",
            "port",
            "security",
            "auth_method",
            "username",
            "secret",
            "oauth_tenant_id",
            "oauth_client_id",
            "oauth_authority",
            "impersonation",
            "verify_tls",
            "options",
        ]

    def clean(self):
        cleaned = super().clean()
        kind = cleaned.get("kind")
        if kind in (Tenant.Kind.IMAP, Tenant.Kind.MAILDIR) and not cleaned.get("endpoint"):
            label = "IMAP host" if kind == Tenant.Kind.IMAP else "maildir folder"
            self.add_error("endpoint", f"Give the {label}.")
        if not isinstance(cleaned.get("options") or {}, dict):
            self.add_error("options", 'Give a JSON object, e.g. {"timeout": 60}.')
        if cleaned.get("auth_method") == Tenant.AuthMethod.OAUTH2:
            for field in ("oauth_tenant_id", "oauth_client_id"):
                if not cleaned.get(field):
                    self.add_error(field, "Required for OAuth2 client credentials.")
        return cleaned

    def save(self, commit=True):
        tenant = super().save(commit=False)
        new_secret = self.cleaned_data.get("secret")
        if not new_secret and self.instance.pk:
            tenant.secret = Tenant.objects.get(pk=self.instance.pk).secret
        if commit:
            tenant.save()
        return tenant


class MailboxImportForm(forms.Form):
    file = forms.FileField(
        label="CSV file",
        help_text="Columns source_address,target_address,display_name with a header row; "
        "UTF-8, comma or semicolon separated.",
    )
