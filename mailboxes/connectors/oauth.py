"""OAuth2 access tokens for the connectors, from the two identity services migrations meet.

- Microsoft Entra ID, client credentials, through msal
  (https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow): one
  ``ConfidentialClientApplication`` per tenant and client in this process, so its token cache is
  shared by every mailbox and msal hands out a new token before the cached one expires. Graph
  asks for ``https://graph.microsoft.com/.default``; Exchange Online IMAP for
  ``https://outlook.office365.com/.default`` with the ``IMAP.AccessAsApp`` application permission
  (https://learn.microsoft.com/exchange/client-developer/legacy-protocols/how-to-authenticate-an-
  imap-pop-smtp-application-by-using-oauth, "Use client credentials grant flow").
- Google, a service account with domain-wide delegation, through google-auth
  (https://developers.google.com/identity/protocols/oauth2/service-account#delegatingauthority):
  the JWT bearer grant signed with the account's key, ``subject`` = the mailbox, so every mailbox
  has a token of its own, kept per process and renewed by google-auth's rule (``valid`` turns
  false a few minutes before expiry). The key's ``token_uri`` is honoured (tests point it at a
  local server). Gmail's IMAP takes the scope ``https://mail.google.com/`` only
  (https://developers.google.com/workspace/gmail/imap/xoauth2-protocol).

Both log in through ``_LoginSession``, which connects only where the tenant's Reach allows.
"""

from __future__ import annotations

import hashlib
import json
import threading

import msal
import requests

from .base import AuthError, ConnectorError, TransientError
from .reach_http import ReachAdapter, adapter_class

DEFAULT_LOGIN = "https://login.microsoftonline.com"
# Exchange Online IMAP with client credentials: "https://outlook.office365.com/.default".
OUTLOOK_SCOPE = "https://outlook.office365.com/.default"
GMAIL_SCOPE = "https://mail.google.com/"
PROVIDERS = ("microsoft", "google")

_apps: dict[tuple, msal.ConfidentialClientApplication] = {}
_google: dict[tuple, object] = {}  # (key, subject, scope, Reach, CA file) -> Credentials
_registry_lock = threading.Lock()


class _LoginSession(requests.Session):
    """The login service's HTTP client: connects only where the tenant's Reach allows. With a
    CA file, REQUESTS_CA_BUNDLE from the environment must not override the session's own."""

    def __init__(self, endpoint, options: dict):
        super().__init__()
        adapter = adapter_class(ReachAdapter, endpoint.reach)()
        self.mount("https://", adapter)
        self.mount("http://", adapter)
        ca_file = options["ca_file"]
        self.verify = ca_file if ca_file and endpoint.verify_tls else endpoint.verify_tls
        self.trust_env = not ca_file

    def request(self, *args, **kwargs):
        kwargs.setdefault("timeout", 30)
        return super().request(*args, **kwargs)


# -- Microsoft Entra ID ---------------------------------------------------------------------


def _credential(endpoint, options: dict):
    """Client secret, or a certificate (its private key, stored encrypted, and the
    ``certificate_thumbprint`` option)."""
    if endpoint.certificate_key:
        thumbprint = options.get("certificate_thumbprint")
        if not thumbprint:
            raise AuthError("A certificate key is configured without certificate_thumbprint.")
        return {"private_key": endpoint.certificate_key, "thumbprint": thumbprint}
    if not endpoint.secret:
        raise AuthError("No client secret or certificate is configured for this tenant.")
    return endpoint.secret


def token_app(endpoint, options: dict) -> msal.ConfidentialClientApplication:
    """The process-wide msal app (and so token cache) for this tenant and client."""
    credential = _credential(endpoint, options)
    authority = endpoint.oauth_authority or f"{DEFAULT_LOGIN}/{endpoint.oauth_tenant_id}"
    secret_id = hashlib.sha256(json.dumps(credential, sort_keys=True).encode()).hexdigest()
    # The Reach too: an app made while local endpoints were allowed must not serve after.
    key = (authority, endpoint.oauth_client_id, secret_id, endpoint.reach, options["ca_file"])
    with _registry_lock:
        if key not in _apps:
            try:
                # An overridden authority (tests, sovereign clouds) is not in Microsoft's
                # instance list: skip instance discovery; tenant discovery still runs.
                _apps[key] = msal.ConfidentialClientApplication(
                    endpoint.oauth_client_id,
                    client_credential=credential,
                    authority=authority,
                    validate_authority=not endpoint.oauth_authority,
                    instance_discovery=False if endpoint.oauth_authority else None,
                    http_client=_LoginSession(endpoint, options),
                )
            except ValueError as exc:
                raise AuthError(f"Unknown tenant or login authority {authority}: {exc}") from exc
            except requests.RequestException as exc:
                raise TransientError(f"Cannot reach the login service: {exc}") from exc
        return _apps[key]


def client_token(app: msal.ConfidentialClientApplication, scope: str) -> str:
    """An app-only access token for ``scope``: msal's cached one while it has life left."""
    try:
        result = app.acquire_token_for_client(scopes=[scope])
    except requests.RequestException as exc:
        raise TransientError(f"Cannot reach the login service: {exc}") from exc
    if "access_token" not in result:
        description = (result.get("error_description") or "").splitlines()[0:1]
        raise AuthError(
            f"Entra ID refused the app's credentials ({result.get('error')}): "
            f"{' '.join(description)}"
        )
    return result["access_token"]


def forget_tokens(app: msal.ConfidentialClientApplication) -> None:
    """Drop the app's cached access tokens: the service refused one before its expiry
    (revoked, key rollover), so the next ``client_token`` asks Entra ID again."""
    cache = app.token_cache
    for entry in list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
        cache.remove_at(entry)


# -- token sources for a mailbox ------------------------------------------------------------


class MicrosoftTokens:
    """App-only tokens: one token serves every mailbox of the tenant; Exchange Online checks
    the app's permission on the mailbox named in the SASL exchange."""

    def __init__(self, endpoint, options: dict):
        self._app = token_app(endpoint, options)
        self._scope = options.get("scope") or OUTLOOK_SCOPE

    def token(self, mailbox: str) -> str:
        return client_token(self._app, self._scope)

    def forget(self, mailbox: str) -> None:
        forget_tokens(self._app)


class GoogleTokens:
    """Delegated tokens: the service account acts as each mailbox (``subject``), one token
    per mailbox. The tenant's secret is the service account's JSON key."""

    def __init__(self, endpoint, options: dict):
        try:
            self._key = json.loads(endpoint.secret or "")
            self._key["client_email"]
        except (ValueError, KeyError, TypeError):
            raise AuthError(
                "The tenant's secret is not a service account key: paste the JSON key file "
                "Google Cloud's console gives for the service account."
            ) from None
        self._endpoint, self._options = endpoint, options
        self._scope = options.get("scope") or GMAIL_SCOPE
        key_id = hashlib.sha256(endpoint.secret.encode()).hexdigest()
        self._cache_key = (key_id, self._scope, endpoint.reach, options["ca_file"])

    def _credentials(self, mailbox: str):
        from google.oauth2 import service_account  # loaded by Google tenants only

        key = (*self._cache_key, mailbox.lower())
        with _registry_lock:
            if key not in _google:
                try:
                    _google[key] = service_account.Credentials.from_service_account_info(
                        self._key, scopes=[self._scope], subject=mailbox
                    )
                except (ValueError, KeyError) as exc:
                    raise AuthError(f"The service account key cannot be used: {exc}") from exc
            return _google[key]

    def token(self, mailbox: str) -> str:
        from google.auth import exceptions
        from google.auth.transport.requests import Request

        credentials = self._credentials(mailbox)
        if credentials.valid:
            return credentials.token
        session = _LoginSession(self._endpoint, self._options)
        try:
            credentials.refresh(Request(session))
        except exceptions.TransportError as exc:
            raise TransientError(f"Google's token endpoint is unreachable: {exc}") from exc
        except exceptions.RefreshError as exc:
            if getattr(exc, "retryable", False):
                raise TransientError(f"Google's token endpoint failed: {exc}") from exc
            said = exc.args[0] if exc.args else exc
            raise AuthError(
                f"Google refused a token for {mailbox} to the service account "
                f"{self._key['client_email']}: {said}. Domain-wide delegation must grant its "
                f"client id the scope {self._scope}, and the mailbox must be a user of the domain."
            ) from exc
        finally:
            session.close()
        return credentials.token

    def forget(self, mailbox: str) -> None:
        self._credentials(mailbox).token = None


def token_source(endpoint, options: dict):
    """The token source the ``oauth_provider`` option names (Microsoft by default)."""
    provider = options.get("oauth_provider") or "microsoft"
    if provider == "microsoft":
        return MicrosoftTokens(endpoint, options)
    if provider == "google":
        return GoogleTokens(endpoint, options)
    raise ConnectorError(f"Unknown oauth_provider {provider!r}: use one of {', '.join(PROVIDERS)}.")
