from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    # Read-only job status for dashboards and deploy pipelines (staff session or bearer token).
    path("ops/", include("migrations_worker.urls")),
]
