"""Staff pages outside the stock admin screens."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from staff import views as staff_views

app_name = "staff"
urlpatterns: list[URLPattern | URLResolver] = [
    path("upload/", staff_views.image_upload, name="image_upload"),
    path("images/status/", staff_views.image_status, name="image_status"),
    path("images/<int:image_id>/rerun/", staff_views.image_rerun, name="image_rerun"),
    path("import/", staff_views.import_start, name="import_start"),
    path("import/<int:job_id>/", staff_views.import_detail, name="import_detail"),
    path("import/<int:job_id>/status/", staff_views.import_status, name="import_status"),
    path("import/<int:job_id>/start/", staff_views.import_requeue, name="import_requeue"),
    path("import/<int:job_id>/report.csv", staff_views.import_report, name="import_report"),
    path("health/", staff_views.catalog_health, name="health"),
]
