from django.urls import path

from . import views

urlpatterns = [
    path("projects/<int:project_id>/dns/", views.propagation, name="dns_propagation"),
    path("projects/<int:project_id>/dns/check/", views.check_now, name="dns_check_now"),
    path("projects/<int:project_id>/dns/records/add/", views.record_add, name="dns_record_add"),
    path(
        "projects/<int:project_id>/dns/records/remove/",
        views.record_remove,
        name="dns_record_remove",
    ),
    path("projects/<int:project_id>/dns/sip/", views.sip, name="dns_sip"),
    path(
        "projects/<int:project_id>/dns/tenant-records/",
        views.tenant_records,
        name="dns_tenant_records",
    ),
    path("projects/<int:project_id>/dns/snapshot/", views.snapshot, name="dns_snapshot"),
    path("projects/<int:project_id>/dns/nameservers/", views.nameservers, name="dns_nameservers"),
]
