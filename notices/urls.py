from django.urls import path

from . import views

urlpatterns = [
    path("projects/<int:project_id>/notices/", views.outbox, name="notices_outbox"),
    path("projects/<int:project_id>/notices/send/", views.notices_send, name="notices_send"),
    path(
        "projects/<int:project_id>/notices/<int:notice_id>/",
        views.notice_detail,
        name="notice_detail",
    ),
    path(
        "projects/<int:project_id>/notices/<int:notice_id>/resend/",
        views.notice_resend,
        name="notice_resend",
    ),
    path(
        "projects/<int:project_id>/notices/templates/<str:kind>/",
        views.notice_template,
        name="notice_template",
    ),
]
