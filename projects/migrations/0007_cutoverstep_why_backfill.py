"""Checklists made before steps said why they matter get the line of their template step (as the
template read when this migration was written), so every step on an open checklist says why."""

from django.db import migrations

# The template of the time: every checklist then had these keys, whatever its route.
WHY = {
    "lower-ttl": "How long other servers keep old answers: lowered a day ahead, the switch "
    "takes minutes instead of a day.",
    "prestage": "Copies the mail ahead of the day, so that only what arrives since is left to "
    "copy.",
    "freeze": "Users who know when their mail moves expect the pause and use the new system "
    "after it.",
    "source-users-off": "Microsoft 365 lets a domain go only once no user, group or alias uses "
    "it any more.",
    "source-domain-off": "While the old system counts the domain as its own, it keeps the "
    "domain's mail to itself.",
    "old-records-off": "The old provider's records: while they are still served, some mail and "
    "some programs keep going to the old system.",
    "target-domain-on": "Proves to the new system that the domain is yours; it accepts no mail "
    "for the domain before that.",
    "target-records": "MX brings new mail to the new system, autodiscover lets Outlook find the "
    "mailbox, and SPF, DKIM and DMARC keep the mail users send out of spam folders.",
    "sip-records": "Only for Skype for Business / Lync, which Microsoft retired in 2021: lets "
    "those chat programs find their server.",
    "target-users-on": "Users sign in and receive mail at the domain's addresses only once "
    "their accounts carry the domain.",
    "mail-flow": "Proves that mail goes out and comes in through the new system before users "
    "find out that it does not.",
    "delta": "Copies what reached the old mailboxes since the pre-stage.",
    "old-client-off": "Old sign-in and chat programs keep connecting to the old system until "
    "they are removed.",
    "outlook-profile": "Outlook keeps opening the old mailbox until it has a profile for the "
    "new one.",
    "final-delta": "Copies the mail that still reached the old system while DNS switched over.",
    "close": "The report records what was moved and verified, for the client and for later "
    "questions.",
}


def fill_why(apps, schema_editor):
    CutoverStep = apps.get_model("projects", "CutoverStep")
    for key, why in WHY.items():
        CutoverStep.objects.filter(key=key, why="").update(why=why)


class Migration(migrations.Migration):
    dependencies = [("projects", "0006_cutoverstep_why")]

    operations = [migrations.RunPython(fill_why, migrations.RunPython.noop)]
