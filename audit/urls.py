from django.urls import path

from . import views

urlpatterns = [
    path("projects/<int:project_id>/audit/", views.audit_log, name="audit_log"),
    path("projects/<int:project_id>/audit/audit.csv", views.audit_csv, name="audit_csv"),
]
