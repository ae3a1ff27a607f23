from django.apps import AppConfig


class DnscheckConfig(AppConfig):
    name = "dnscheck"
    verbose_name = "DNS checks"
