from django.apps import AppConfig


class NoticesConfig(AppConfig):
    name = "notices"
    verbose_name = "Notifications"

    def ready(self):
        from . import events  # noqa: F401  (connects the project-change receivers)
