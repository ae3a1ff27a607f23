from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("accounts.urls")),
    path("", include("projects.urls")),
    path("", include("mailboxes.urls")),
    path("", include("dnscheck.urls")),
    path("", include("notices.urls")),
    path("", include("schedules.urls")),
    path("", include("audit.urls")),
]
