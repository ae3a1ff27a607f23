"""Secrets encrypted at rest with Fernet (key from settings.FIELD_ENCRYPTION_KEY)."""

from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


@cache
def _fernet(keys: str) -> MultiFernet:
    try:
        return MultiFernet([Fernet(k.strip()) for k in keys.split(",") if k.strip()])
    except ValueError as exc:
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEY must be one or more comma-separated Fernet keys "
            '(python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key())")'
        ) from exc


def fernet() -> MultiFernet:
    return _fernet(settings.FIELD_ENCRYPTION_KEY)


class UnreadableSecret(str):
    """What a secret reads as when no configured key decrypts it: empty, yet recognisable, so
    the copy can say "the key changed" instead of "wrong password"."""

    def __new__(cls, token: str):
        secret = super().__new__(cls, "")
        secret.token = token  # saved back unchanged, so a later key fix recovers it
        return secret


def is_unreadable(secret: str) -> bool:
    return isinstance(secret, UnreadableSecret)


class EncryptedTextField(models.TextField):
    """Stores Fernet tokens; Python code sees plain text. Empty stays empty."""

    def from_db_value(self, value, expression, connection):
        if not value:
            return ""
        try:
            return fernet().decrypt(value.encode()).decode()
        except InvalidToken:
            # A wrong or rotated-away key must not crash every page that loads a tenant.
            return UnreadableSecret(value)

    def get_prep_value(self, value):
        if is_unreadable(value):
            return value.token
        if not value:
            return ""
        return fernet().encrypt(str(value).encode()).decode()
