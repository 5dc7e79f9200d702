from django.apps import AppConfig


class SeedConfig(AppConfig):
    name = "seed"
    verbose_name = "Demo data"
