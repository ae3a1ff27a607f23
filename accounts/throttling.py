"""django-axes hooks: which address a login comes from, and what a lockout shows."""

from axes.helpers import get_cool_off
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.shortcuts import render


def client_ip(request):
    """The address axes counts failures against.

    Behind the TLS proxy every request comes from the proxy, which would make the lockout
    username-only (anyone could lock a consultant out); the proxy appends the address it saw to
    X-Forwarded-For, so the last entry is the one a client cannot forge.
    """
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if settings.SECURE_PROXY_SSL_HEADER and forwarded:
        return forwarded.split(",")[-1].strip()
    return request.META.get("REMOTE_ADDR")


def locked_out(request, original_response=None, credentials=None):
    """The login page again, saying why the right password is refused and for how long."""
    minutes = round(get_cool_off(request).total_seconds() / 60)
    context = {"form": AuthenticationForm(request), "locked_out_minutes": minutes}
    return render(request, "registration/login.html", context, status=429)
