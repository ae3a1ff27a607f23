from django.shortcuts import redirect
from django.urls import reverse
from django_htmx.http import HttpResponseClientRedirect

from .twofactor import owed_two_factor_step

# The pages a signed-in user can reach before the second factor is settled.
OPEN_BEFORE_TWO_FACTOR = {"login", "logout", "two_factor_setup", "two_factor_verify"}


class TwoFactorMiddleware:
    """After the password, every page (the admin's too) waits for the TOTP code.

    A middleware rather than a decorator so that no view, ours or the admin's, can forget it.
    Needs django_otp's OTPMiddleware before it (for ``user.is_verified``).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.resolver_match.view_name in OPEN_BEFORE_TWO_FACTOR:
            return None
        step = owed_two_factor_step(request)
        if step is None:
            return None
        if request.htmx:
            # Back to the page the fragment belongs to, not to the fragment.
            url = reverse(step, query={"next": request.htmx.current_url_abs_path or "/"})
            return HttpResponseClientRedirect(url)
        return redirect(reverse(step, query={"next": request.get_full_path()}))
