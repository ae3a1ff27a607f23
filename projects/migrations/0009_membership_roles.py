"""Project members get a role: the plain many-to-many table becomes the Membership model.
Everyone who was a member keeps every right they had, as an owner."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


def copy_members_as_owners(apps, schema_editor):
    Project = apps.get_model("projects", "Project")
    Membership = apps.get_model("projects", "Membership")
    old = Project.members.through.objects.values_list("project_id", "user_id")
    Membership.objects.bulk_create(
        Membership(project_id=project, user_id=user, role="owner") for project, user in old
    )


def copy_members_back(apps, schema_editor):
    Project = apps.get_model("projects", "Project")
    Membership = apps.get_model("projects", "Membership")
    Through = Project.members.through
    Through.objects.bulk_create(
        Through(project_id=project, user_id=user)
        for project, user in Membership.objects.values_list("project_id", "user_id")
    )


class Migration(migrations.Migration):
    dependencies = [
        ("projects", "0008_project_time_zone"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Membership",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "role",
                    models.CharField(
                        choices=[
                            ("viewer", "Viewer (read-only)"),
                            ("operator", "Operator (passes, checklist, notifications)"),
                            ("owner", "Owner (members, tenants, credentials)"),
                        ],
                        default="owner",
                        max_length=10,
                    ),
                ),
                (
                    "project",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="memberships",
                        to="projects.project",
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="memberships",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["user__username"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("project", "user"), name="one_membership_per_user"
                    )
                ],
            },
        ),
        migrations.RunPython(copy_members_as_owners, copy_members_back),
        migrations.SeparateDatabaseAndState(
            # The old table goes (its rows are in Membership now); the field stays, through it.
            database_operations=[migrations.RemoveField(model_name="project", name="members")],
            state_operations=[
                migrations.AlterField(
                    model_name="project",
                    name="members",
                    field=models.ManyToManyField(
                        related_name="projects",
                        through="projects.Membership",
                        to=settings.AUTH_USER_MODEL,
                    ),
                )
            ],
        ),
        migrations.CreateModel(
            name="Invitation",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("email", models.EmailField(max_length=254)),
                (
                    "role",
                    models.CharField(
                        choices=[
                            ("viewer", "Viewer (read-only)"),
                            ("operator", "Operator (passes, checklist, notifications)"),
                            ("owner", "Owner (members, tenants, credentials)"),
                        ],
                        default="operator",
                        max_length=10,
                    ),
                ),
                ("token_hash", models.CharField(max_length=64, unique=True)),
                ("created", models.DateTimeField(default=django.utils.timezone.now)),
                ("expires", models.DateTimeField()),
                ("accepted_at", models.DateTimeField(blank=True, null=True)),
                ("mailed_at", models.DateTimeField(blank=True, null=True)),
                ("mail_error", models.TextField(blank=True)),
                (
                    "accepted_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "invited_by",
                    models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "project",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="invitations",
                        to="projects.project",
                    ),
                ),
            ],
            options={"ordering": ["-created", "-id"]},
        ),
    ]
