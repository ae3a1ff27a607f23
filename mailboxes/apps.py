from django.apps import AppConfig


class MailboxesConfig(AppConfig):
    name = "mailboxes"
