"""The data jobs over the investments app's tables; importing registers them (the engine imports
each app's `jobs` module with `autodiscover_modules("jobs")`)."""

from . import alerts_uuid  # noqa: F401
