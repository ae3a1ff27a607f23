from django.urls import path

from . import views

urlpatterns = [
    path("projects/<int:project_id>/schedules/", views.schedules, name="schedules"),
    path("projects/<int:project_id>/schedules/add/", views.schedule_add, name="schedule_add"),
    path(
        "projects/<int:project_id>/schedules/<int:schedule_id>/delete/",
        views.schedule_delete,
        name="schedule_delete",
    ),
    path("projects/<int:project_id>/windows/add/", views.window_add, name="window_add"),
    path(
        "projects/<int:project_id>/windows/<int:window_id>/delete/",
        views.window_delete,
        name="window_delete",
    ),
]
