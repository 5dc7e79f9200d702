"""The status API's URLs, mounted under /ops/ by config.urls."""

from django.urls import path

from . import views

app_name = "mw_ops"
urlpatterns = [
    path("runs.json", views.runs_json, name="runs"),
    path("runs/<int:run_id>.json", views.run_json, name="run"),
    path("metrics", views.metrics, name="metrics"),
]
