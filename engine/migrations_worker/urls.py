"""The status API's URLs, mounted by the project: `path("ops/", include("migrations_worker.urls"))`."""

from django.urls import path

from .ops import fleet_status, health, status

app_name = "mw_ops"
urlpatterns = [
    path("runs.json", status.runs_json, name="runs"),
    path("runs/<int:run_id>.json", status.run_json, name="run"),
    path("fleet.json", fleet_status.fleet_json, name="fleet"),
    path("metrics", status.metrics, name="metrics"),
    path("health", health.health, name="health"),
]
