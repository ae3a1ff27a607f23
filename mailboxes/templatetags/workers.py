"""The banner of the dashboard and project pages when no copy worker answers."""

from django import template
from django.utils import timezone

from mailboxes import workers
from mailboxes.models import Mailbox
from projects.models import Project

register = template.Library()


@register.inclusion_tag("mailboxes/_worker_silence.html", takes_context=True)
def worker_silence(context, project=None):
    """For one project, or for every project of the signed-in user."""
    if project is not None:
        mailboxes = project.mailboxes.all()
    else:
        projects = Project.objects.for_user(context["request"].user)
        mailboxes = Mailbox.objects.filter(project__in=projects)
    silence = workers.silence(mailboxes)
    since = silence and silence.since and timezone.localtime(silence.since)
    today = timezone.localdate()
    return {
        "silence": silence,
        "since": since,
        "since_format": "H:i" if since and since.date() == today else "j M H:i",
    }
