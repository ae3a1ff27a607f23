from django.urls import path

from . import readiness, views

urlpatterns = [
    path("projects/<int:project_id>/mailboxes/new/", views.mailbox_add, name="mailbox_add"),
    path(
        "projects/<int:project_id>/mailboxes/<int:mailbox_id>/edit/",
        views.mailbox_edit,
        name="mailbox_edit",
    ),
    path(
        "projects/<int:project_id>/mailboxes/<int:mailbox_id>/delete/",
        views.mailbox_delete,
        name="mailbox_delete",
    ),
    path(
        "projects/<int:project_id>/mailboxes/login-checks/",
        views.mailbox_login_checks,
        name="mailbox_login_checks",
    ),
    path(
        "projects/<int:project_id>/mailboxes/<int:mailbox_id>/",
        views.mailbox_detail,
        name="mailbox_detail",
    ),
    path(
        "projects/<int:project_id>/mailboxes/<int:mailbox_id>/link/revoke/",
        views.mailbox_link_revoke,
        name="mailbox_link_revoke",
    ),
    path(
        "projects/<int:project_id>/mailboxes/actions/",
        views.mailbox_bulk_action,
        name="mailbox_bulk_action",
    ),
    path("projects/<int:project_id>/report.csv", views.project_report, name="project_report"),
    path(
        "projects/<int:project_id>/readiness/",
        readiness.project_readiness,
        name="project_readiness",
    ),
    path(
        "projects/<int:project_id>/readiness.csv",
        readiness.project_readiness_csv,
        name="project_readiness_csv",
    ),
    path(
        "projects/<int:project_id>/discover/", readiness.project_discover, name="project_discover"
    ),
    path("progress/<str:token>/", views.enduser_progress, name="enduser_progress"),
]
