import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the admin user once: password from ADMIN_PASSWORD, or a random one printed once."

    def add_arguments(self, parser):
        parser.add_argument("--username", default=os.environ.get("ADMIN_USER", "admin"))

    def handle(self, username, **options):
        User = get_user_model()
        if User.objects.filter(username=username).exists():
            self.stdout.write(f"Admin user {username!r} exists; its password is unchanged.")
            return
        password = os.environ.get("ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        User.objects.create_superuser(username, "", password)
        if os.environ.get("ADMIN_PASSWORD"):
            self.stdout.write(f"Created admin user {username!r}; its password is ADMIN_PASSWORD.")
        else:
            # Printed this once only: it is stored hashed.
            self.stdout.write(f"Created admin user {username!r} with password: {password}")
