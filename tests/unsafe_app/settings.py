"""Test settings plus `tests.unsafe_app`, whose migrations the linter must reject.

Only `manage.py lint_migrations` runs with these (in a subprocess), so the app's unsafe
migrations never reach the test database the rest of the suite migrates.
"""

from config.settings.test import *  # noqa: F403
from config.settings.test import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.unsafe_app"]
