from django.contrib.auth import views as auth_views
from django.urls import path

from .views import cutover, dashboard, setup, team

urlpatterns = [
    path("", dashboard.home, name="home"),
    path("projects/<int:project_id>/", dashboard.project_detail, name="project_detail"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("projects/new/", setup.project_create, name="project_create"),
    path("projects/<int:project_id>/edit/", setup.project_edit, name="project_edit"),
    path(
        "projects/<int:project_id>/tenants/<str:side>/check/",
        setup.tenant_check,
        name="tenant_check",
    ),
    path(
        "projects/<int:project_id>/mailboxes/import/",
        setup.mailbox_import,
        name="mailbox_import",
    ),
    path(
        "projects/<int:project_id>/mailboxes/export.csv",
        setup.mailbox_export,
        name="mailbox_export",
    ),
    path(
        "projects/<int:project_id>/mailboxes/sample.csv",
        setup.mailbox_sample,
        name="mailbox_sample",
    ),
    path("projects/<int:project_id>/team/", team.team, name="team"),
    path(
        "projects/<int:project_id>/team/<int:membership_id>/role/",
        team.member_role,
        name="member_role",
    ),
    path(
        "projects/<int:project_id>/team/<int:membership_id>/remove/",
        team.member_remove,
        name="member_remove",
    ),
    path(
        "projects/<int:project_id>/team/invitations/<int:invitation_id>/revoke/",
        team.invitation_revoke,
        name="invitation_revoke",
    ),
    path("invite/<str:invite_token>/", team.invitation_accept, name="invitation_accept"),
    path("projects/<int:project_id>/cutover/", cutover.cutover, name="cutover"),
    path("projects/<int:project_id>/cutover/state/", cutover.cutover_state, name="cutover_state"),
    path(
        "projects/<int:project_id>/cutover/steps/add/",
        cutover.cutover_step_add,
        name="cutover_step_add",
    ),
    path(
        "projects/<int:project_id>/cutover/steps/reset/",
        cutover.cutover_reset,
        name="cutover_reset",
    ),
    path(
        "projects/<int:project_id>/cutover/steps/<int:step_id>/tick/",
        cutover.cutover_tick,
        name="cutover_tick",
    ),
    path(
        "projects/<int:project_id>/cutover/steps/<int:step_id>/edit/",
        cutover.cutover_step_edit,
        name="cutover_step_edit",
    ),
    path(
        "projects/<int:project_id>/cutover/steps/<int:step_id>/move/",
        cutover.cutover_step_move,
        name="cutover_step_move",
    ),
    path(
        "projects/<int:project_id>/cutover/steps/<int:step_id>/remove/",
        cutover.cutover_step_remove,
        name="cutover_step_remove",
    ),
    path(
        "projects/<int:project_id>/cutover/steps/<int:step_id>/delta/",
        cutover.cutover_delta,
        name="cutover_delta",
    ),
    path(
        "projects/<int:project_id>/cutover/steps/<int:step_id>/mailboxes/<int:mailbox_id>/tick/",
        cutover.cutover_mailbox_tick,
        name="cutover_mailbox_tick",
    ),
]
