from django.contrib.auth import views as auth_views
from django.urls import path

from .views import dashboard, setup

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
]
