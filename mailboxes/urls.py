from django.urls import path

from . import views

urlpatterns = [
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
    path("progress/<str:token>/", views.enduser_progress, name="enduser_progress"),
]
