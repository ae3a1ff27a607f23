from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"

    def ready(self):
        from . import twofactor  # noqa: F401  (connects the login signal)
