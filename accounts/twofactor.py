"""When a signed-in user still owes a second factor, and which page settles it."""

from django.conf import settings
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from django_otp import user_has_device

# Set at password login: whether this session owes a TOTP code. Looked up once per login rather
# than once per request, which keeps the pages' query counts flat.
CODE_DUE = "two_factor_code_due"


@receiver(user_logged_in)
def note_code_due(sender, request, user, **kwargs):
    request.session[CODE_DUE] = user_has_device(user)


def owed_two_factor_step(request):
    """The page a signed-in user must pass first: the code for their device, or setting one up."""
    user = request.user
    if not user.is_authenticated or user.is_verified():
        return None
    if request.session.get(CODE_DUE):
        return "two_factor_verify"
    if settings.TWO_FACTOR_REQUIRED:
        return "two_factor_setup"
    return None
