"""A mailbox row's logins on the project page: who logs in on each side, and the last "Test
logins" result, kept up to date by one poll for the whole page."""

from django import template

from mailboxes import logins

register = template.Library()


@register.inclusion_tag("mailboxes/_row_logins.html")
def row_logins(mailbox, project):
    # The project of the page holds both tenants already: login_label then costs no query,
    # so the page's query count stays flat however many rows it shows.
    if mailbox.project_id == project.pk:
        mailbox.project = project
    return {
        "mailbox": mailbox,
        "project": project,
        "source_label": mailbox.login_label("source"),
        "target_label": mailbox.login_label("target"),
    }


@register.inclusion_tag("mailboxes/_login_check.html")
def login_check(mailbox, oob=False):
    return {
        "mailbox": mailbox,
        "oob": oob,
        "pending": logins.is_pending(mailbox),
        "no_answer": logins.never_answered(mailbox),
        "no_answer_message": logins.NO_ANSWER,
    }


@register.inclusion_tag("mailboxes/_login_check_poller.html")
def login_check_poller(project, mailboxes):
    """Polls while any of ``mailboxes`` is being tested; an empty placeholder otherwise."""
    return {"project": project, "pending": [m.pk for m in mailboxes if logins.is_pending(m)]}
