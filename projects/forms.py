import json
import zoneinfo

from django import forms
from django.contrib.auth.forms import UserCreationForm
from django.core.exceptions import ValidationError
from django.core.validators import validate_domain_name

from mailboxes.connectors.options import LABEL_STRATEGIES, SCHEMAS, OptionError, read_options

from .models import Membership, Project, Role, Tenant

# Every IANA name Python knows, for the project's time zone (validated by the model too).
TIME_ZONES = [(name, name) for name in sorted(zoneinfo.available_timezones())]


class InviteForm(forms.Form):
    email = forms.EmailField(label="E-mail")
    role = forms.ChoiceField(choices=Role.choices, initial=Role.OPERATOR)


class RoleForm(forms.ModelForm):
    class Meta:
        model = Membership
        fields = ["role"]

    def clean_role(self):
        role = self.cleaned_data["role"]
        if role != Role.OWNER and self.instance.is_last_owner:
            raise ValidationError("The project needs an owner: make someone else owner first.")
        return role


class SignupForm(UserCreationForm):
    """A new account from an invitation: the e-mail is the invitation's; Django's password
    validators apply."""

    class Meta(UserCreationForm.Meta):
        fields = ["username"]


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

    class Meta:
        model = Project
        fields = [
            *("client_name", "planned_cutover", "time_zone", "state"),
            *("contact_name", "contact_email"),
        ]
        widgets = {
            "planned_cutover": forms.DateTimeInput(attrs={"type": "datetime-local"}),
            "time_zone": forms.Select(choices=TIME_ZONES),
        }
        labels = {
            "contact_name": "Contact for end users",
            "contact_email": "Contact's email",
            "time_zone": "Client's time zone",
        }
        help_texts = {
            "time_zone": "Scheduled passes, run windows and the dates in end users' messages "
            "use this zone.",
            "contact_name": "Whom the users ask about their move: shown on their progress page.",
            "contact_email": "Shown on the users' progress page beside the name.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["time_zone"].required = False
        if self.instance.pk:
            self.initial["domains"] = "\n".join(d.name for d in self.instance.domains.all())
            self.initial["folder_mappings"] = "\n".join(
                f"{m.source_path} => {'-' if m.exclude else m.target_path}"
                for m in self.instance.folder_mappings.all()
            )

    def clean_time_zone(self):
        # Left out of a post (a script, an older form): the zone stays as it was, UTC at first.
        return self.cleaned_data["time_zone"] or self.instance.time_zone

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


K = Tenant.Kind

# The fields each connector reads (mailboxes/connectors/), in the order the form shows them.
KIND_FIELDS = {
    K.IMAP: (
        "endpoint",
        "port",
        "security",
        "auth_method",
        "username",
        "secret",
        "impersonation",
        "oauth_tenant_id",
        "oauth_client_id",
        "oauth_authority",
        "verify_tls",
        "options",
    ),
    K.EWS: (
        "endpoint",
        "auth_method",
        "username",
        "secret",
        "impersonation",
        "oauth_tenant_id",
        "oauth_client_id",
        "oauth_authority",
        "verify_tls",
        "options",
    ),
    K.EXCHANGE_ONLINE: (
        "oauth_tenant_id",
        "oauth_client_id",
        "secret",
        "certificate_key",
        "oauth_authority",
        "endpoint",
        "verify_tls",
        "options",
    ),
    K.GOOGLE: ("secret", "username", "endpoint", "verify_tls", "options"),
    K.MAILDIR: ("endpoint",),
}
# Everything that decides where and how the tenant is reached: a change makes the last
# connection test say nothing about the tenant as it is now.
CONNECTION_FIELDS = (
    "kind",
    "endpoint",
    "port",
    "security",
    "auth_method",
    "username",
    "secret",
    "certificate_key",
    "oauth_tenant_id",
    "oauth_client_id",
    "oauth_authority",
    "impersonation",
    "verify_tls",
    "options",
)
# Stored encrypted, never rendered back: left empty, the stored value is kept.
WRITE_ONLY = ("secret", "certificate_key")
ENDPOINT_LABELS = {
    K.IMAP: ("IMAP host", ""),
    K.EWS: ("EWS URL", "Empty: autodiscover from each mailbox's domain."),
    K.EXCHANGE_ONLINE: (
        "Graph base URL",
        "Empty: Microsoft Graph (graph.microsoft.com); sovereign clouds: e.g. graph.microsoft.us.",
    ),
    K.GOOGLE: ("Gmail API URL", "Empty: the Gmail API (gmail.googleapis.com)."),
    K.MAILDIR: (
        "Maildir folder",
        "A folder the worker can read and write: one maildir per mailbox address under it.",
    ),
}
SECRET_LABELS = {
    K.IMAP: "Password (of the master user, or shared by the mailboxes)",
    K.EWS: "Password or client secret",
    K.EXCHANGE_ONLINE: "Client secret",
    K.GOOGLE: "Service account key (JSON)",
}


class WriteOnlyTextarea(forms.Textarea):
    """A textarea that never shows a value, stored or submitted (a private key)."""

    def format_value(self, value):
        return None


def service_account_key_problem(text: str) -> str:
    """Why ``text`` is not a Google service account's JSON key, or "" (checked on save so a
    pasted client secret or PEM is caught before the first copy)."""
    try:
        key = json.loads(text)
    except ValueError:
        return "Paste the service account's JSON key file as it was downloaded (it is not JSON)."
    missing = [
        name
        for name in ("client_email", "private_key", "token_uri")
        if not isinstance(key, dict) or not key.get(name)
    ]
    if not isinstance(key, dict) or key.get("type") != "service_account" or missing:
        what = f" (no {', '.join(missing)})" if missing else ""
        return f"This is not a service account key{what}: create a JSON key for the account."
    return ""


def options_help(kind: str) -> str:
    options = "; ".join(f"<code>{name}</code>: {o.describe()}" for name, o in SCHEMAS[kind].items())
    return f'A JSON object, e.g. {{"concurrency": 2}}. Accepted: {options}.'


class TenantForm(forms.ModelForm):
    """Only the fields of the chosen connector kind; secrets are write-only (the form never
    renders the stored value back).

    Only staff may choose a local maildir (files on the worker, other clients' among them):
    others are not offered the kind, and see a maildir tenant without being able to change it.

    The kind comes from the submitted data, else the tenant's. ``shown_kind`` says which
    kind's fields were on the page: a kind changed without its fields being shown (no
    JavaScript) is shown first, not saved. Fields another kind uses are reset on save, so no
    stale IMAP host becomes a Graph URL."""

    secret = forms.CharField(
        label="Password or client secret",
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Leave empty to keep the stored secret.",
    )
    certificate_key = forms.CharField(
        label="Certificate private key (PEM)",
        required=False,
        widget=WriteOnlyTextarea(attrs={"rows": 3, "autocomplete": "off"}),
        help_text="Instead of a client secret: the private key of the app's certificate, with "
        "its thumbprint as the certificate_thumbprint option. Stored encrypted, never shown; "
        "leave empty to keep the stored key.",
    )

    oauth_authority = forms.URLField(
        label="OAuth2 authority",
        required=False,
        assume_scheme="https",
        help_text=Tenant._meta.get_field("oauth_authority").help_text,
    )
    shown_kind = forms.CharField(widget=forms.HiddenInput, required=False)

    class Meta:
        model = Tenant
        fields = ["kind", *CONNECTION_FIELDS[1:]]
        labels = {
            "impersonation": "Impersonation account",
            "verify_tls": "Verify the server's TLS certificate",
        }
        help_texts = {
            "username": "The tenant's own account: for the connection test and admin calls "
            "only. Mailboxes log in by the rule (their own login, else the impersonation or "
            "master account, else their address), never all as this one."
        }

    def __init__(self, *args, staff: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.staff = staff
        self.locked = not staff and self.instance.pk and self.instance.kind == K.MAILDIR
        self._stored = {name: getattr(self.instance, name) for name in CONNECTION_FIELDS}
        self.kind = self._chosen_kind()
        shown = self.data.get(self.add_prefix("shown_kind")) if self.is_bound else None
        # A locked tenant keeps its kind whatever was posted: nothing to redraw.
        self.kind_switched = bool(shown) and shown != self.kind and not self.locked
        self.shown_before = KIND_FIELDS.get(shown, ()) if shown else None
        if self.is_bound:
            self.data = self.data.copy()
            self.data[self.add_prefix("shown_kind")] = self.kind
        self.initial["shown_kind"] = self.kind
        for name in CONNECTION_FIELDS[1:]:
            if name not in KIND_FIELDS[self.kind]:
                del self.fields[name]
        self.order_fields(["kind", *KIND_FIELDS[self.kind]])
        self._label_for_kind()
        self._limit_to_user()

    def _limit_to_user(self) -> None:
        if self.locked:
            for field in self.fields.values():
                field.disabled = True
        elif not self.staff:
            # The widget only: a maildir posted anyway gets a clear error in clean().
            kind = self.fields["kind"]
            kind.widget.choices = [c for c in kind.choices if c[0] != K.MAILDIR]

    def _chosen_kind(self) -> str:
        if self.locked:
            return self.instance.kind
        value = self.data.get(self.add_prefix("kind")) if self.is_bound else None
        value = value or self.initial.get("kind") or self.instance.kind or K.IMAP
        return value if value in KIND_FIELDS else (self.instance.kind or K.IMAP)

    def _label_for_kind(self) -> None:
        fields = self.fields
        label, help_text = ENDPOINT_LABELS[self.kind]
        fields["endpoint"].label, fields["endpoint"].help_text = label, help_text
        if "secret" in fields:
            fields["secret"].label = SECRET_LABELS[self.kind]
        if "options" in fields:
            fields["options"].help_text = options_help(self.kind)
        if self.kind == K.GOOGLE:
            fields["secret"].widget = WriteOnlyTextarea(attrs={"rows": 3, "autocomplete": "off"})
            fields["secret"].help_text = (
                "The JSON key file of a service account whose client id has domain-wide "
                "delegation for https://www.googleapis.com/auth/gmail.readonly. Stored "
                "encrypted, never shown; leave empty to keep the stored key."
            )
            fields["username"].label = "Connection test user"
            fields["username"].help_text = (
                "A user of the domain the connection test reads as (the service account acts "
                "for each mailbox itself)."
            )
        if self.kind == K.IMAP:
            fields["auth_method"].help_text = (
                "OAuth2: each mailbox logs in with an access token (OAUTHBEARER or XOAUTH2). The "
                'oauth_provider option says who issues it: "microsoft" (client id, tenant id and '
                'client secret) or "google" (the service account\'s JSON key as the secret).'
            )
            fields["impersonation"].label = "Master user (impersonation)"
            fields["impersonation"].help_text = (
                "Logs in for each mailbox (SASL PLAIN authorization identity), with the "
                "password above."
            )

    def clean(self):
        cleaned = super().clean()
        kind = self.kind
        if self.locked:
            return cleaned
        if kind == K.MAILDIR and not self.staff:
            self.add_error("kind", "Only staff may set up a local maildir tenant.")
        if kind in (K.IMAP, K.MAILDIR) and not cleaned.get("endpoint"):
            label = "IMAP host" if kind == K.IMAP else "maildir folder"
            self.add_error("endpoint", f"Give the {label}.")
        if kind == K.GOOGLE and cleaned.get("secret"):
            problem = service_account_key_problem(cleaned["secret"])
            if problem:
                self.add_error("secret", problem)
        options = cleaned.get("options")
        strategy = options.get("labels") if isinstance(options, dict) else None
        if kind == K.GOOGLE and strategy is not None and strategy not in LABEL_STRATEGIES:
            choices = " or ".join(LABEL_STRATEGIES)
            self.add_error("options", f"The labels option is {choices}, not {strategy!r}.")
        if "options" in cleaned:
            try:
                read_options(kind, cleaned["options"] or {})
            except OptionError as exc:
                self.add_error("options", f"{str(exc)[:1].upper()}{str(exc)[1:]}.")
        oauth = kind == K.EXCHANGE_ONLINE or cleaned.get("auth_method") == Tenant.AuthMethod.OAUTH2
        if oauth and kind == K.IMAP and self._imap_oauth_provider(cleaned) == "google":
            # The service account's key names the account and its token endpoint itself.
            oauth = False
            if cleaned.get("secret"):
                problem = service_account_key_problem(cleaned["secret"])
                if problem:
                    self.add_error("secret", problem)
        if oauth:
            for field in ("oauth_tenant_id", "oauth_client_id"):
                if not cleaned.get(field):
                    self.add_error(field, "Required for OAuth2 client credentials.")
        self._check_reach(cleaned)
        return cleaned

    @staticmethod
    def _imap_oauth_provider(cleaned) -> str:
        options = cleaned.get("options")
        return (options.get("oauth_provider") if isinstance(options, dict) else "") or ""

    def _check_reach(self, cleaned) -> None:
        """Where the tenant points, as entered: not the machine itself, the app's services,
        nor a folder outside the maildir root."""
        places = ("endpoint", "port", "security", "auth_method", "oauth_authority")
        entered = {name: cleaned[name] for name in places if cleaned.get(name) is not None}
        for name, message in Tenant(kind=self.kind, **entered).reach_problems().items():
            if name not in self.errors:
                self.add_error(name, message)

    def save(self, commit=True):
        tenant = super().save(commit=False)
        tenant.kind = self.kind
        for name in CONNECTION_FIELDS[1:]:
            if name not in self.fields:
                setattr(tenant, name, Tenant._meta.get_field(name).get_default())
        for name in WRITE_ONLY:
            if name in self.fields and not self.cleaned_data.get(name):
                setattr(tenant, name, self._stored[name])
        if any(getattr(tenant, name) != self._stored[name] for name in CONNECTION_FIELDS):
            # The old result was about another server or account: it must not read as this
            # tenant's ("Connected" after the host was changed to a wrong one).
            tenant.check_requested_at = tenant.last_check_at = tenant.last_check_ok = None
            tenant.last_check_message = ""
        if commit:
            tenant.save()
        return tenant


def draft(form_class, data, **kwargs):
    """An unbound form showing ``data``'s values: redrawn for another tenant kind, it
    validates nothing and so shows no error yet. Secrets are never carried over, nor a
    tenant's endpoint into another kind (an IMAP host is no EWS URL)."""
    probe = form_class(data, **kwargs)
    shown = getattr(probe, "shown_before", None)
    initial = {}
    for name, field in probe.fields.items():
        key = probe.add_prefix(name)
        was_shown = name in shown if shown is not None else key in data
        if name in WRITE_ONLY or not was_shown:
            continue
        # As a bound form would show it: JSON text stays that text, not a quoted string.
        initial[name] = field.bound_data(field.widget.value_from_datadict(data, None, key), None)
    if isinstance(probe, TenantForm):
        initial["kind"] = probe.kind
        if probe.kind_switched:
            same = probe.instance.kind == probe.kind
            initial["endpoint"] = probe.instance.endpoint if same else ""
    return form_class(initial=initial, **kwargs)


class MailboxImportForm(forms.Form):
    file = forms.FileField(
        label="CSV file",
        help_text="Columns source_address,target_address,display_name with a header row; "
        "UTF-8, comma or semicolon separated.",
    )
