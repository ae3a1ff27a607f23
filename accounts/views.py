"""Two-factor pages: set up an authenticator app, then give its code after each password login."""

import logging
from base64 import b32encode
from math import ceil

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render, resolve_url
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice

from .forms import TokenForm
from .twofactor import CODE_DUE

log = logging.getLogger(__name__)


def _next_url(request):
    url = request.POST.get("next") or request.GET.get("next")
    safe = url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return url if safe else resolve_url(settings.LOGIN_REDIRECT_URL)


def _check_code(request, device, form):
    """True when the code is right; otherwise the form says why (a wrong code, or wait)."""
    allowed, refusal = device.verify_is_allowed()
    if allowed and device.verify_token(form.cleaned_data["code"].strip()):
        return True
    log.warning("Two-factor code refused for user %s", request.user.get_username())
    if allowed:
        form.add_error("code", "That code is not right, or was used already: enter the next one.")
    else:
        wait = ceil((refusal["locked_until"] - timezone.now()).total_seconds())
        form.add_error("code", f"Too many wrong codes: wait {wait} s, then try again.")
    return False


@never_cache
@login_required
def two_factor_verify(request):
    device = TOTPDevice.objects.devices_for_user(request.user, confirmed=True).first()
    if device is None:
        # An administrator removed the device since this login: nothing left to ask for.
        request.session.pop(CODE_DUE, None)
    if device is None or request.user.is_verified():
        return redirect(_next_url(request))
    form = TokenForm(request.POST or None)
    if form.is_valid() and _check_code(request, device, form):
        otp_login(request, device)
        return redirect(_next_url(request))
    return render(request, "accounts/two_factor_verify.html", {"form": form})


@never_cache
@login_required
def two_factor_setup(request):
    confirmed = TOTPDevice.objects.devices_for_user(request.user, confirmed=True).exists()
    if confirmed and not request.user.is_verified():
        # Replacing the device would skip its code: only someone who gave it may see this page.
        return redirect("two_factor_verify")
    if confirmed:
        return render(request, "accounts/two_factor_setup.html", {"confirmed": True})
    device = TOTPDevice.objects.devices_for_user(request.user, confirmed=False).first()
    device = device or TOTPDevice.objects.create(
        user=request.user, name="Authenticator app", confirmed=False
    )
    form = TokenForm(request.POST or None)
    if form.is_valid() and _check_code(request, device, form):
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        otp_login(request, device)
        log.info("Two-factor set up for user %s", request.user.get_username())
        messages.success(request, "Two-factor login is on: each login now asks for a code.")
        return redirect(_next_url(request))
    context = {
        "form": form,
        "config_url": device.config_url,
        "secret": b32encode(device.bin_key).decode(),
        "required": settings.TWO_FACTOR_REQUIRED,
    }
    return render(request, "accounts/two_factor_setup.html", context)
