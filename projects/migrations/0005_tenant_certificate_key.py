"""The Graph certificate's private key leaves the plain-text options for an encrypted field."""

from django.db import migrations

import projects.fields


def keys_out_of_options(apps, schema_editor):
    Tenant = apps.get_model("projects", "Tenant")
    for tenant in Tenant.objects.filter(options__has_key="certificate_pem"):
        tenant.certificate_key = tenant.options.pop("certificate_pem") or ""
        tenant.save(update_fields=["certificate_key", "options"])


def keys_back_into_options(apps, schema_editor):
    Tenant = apps.get_model("projects", "Tenant")
    for tenant in Tenant.objects.exclude(certificate_key=""):
        tenant.options = {**tenant.options, "certificate_pem": tenant.certificate_key}
        tenant.save(update_fields=["options"])


class Migration(migrations.Migration):
    dependencies = [
        ("projects", "0004_project_contact"),
    ]

    operations = [
        migrations.AddField(
            model_name="tenant",
            name="certificate_key",
            field=projects.fields.EncryptedTextField(blank=True),
        ),
        migrations.RunPython(keys_out_of_options, keys_back_into_options),
    ]
