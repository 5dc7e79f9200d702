"""Production: every secret from the environment, HTTPS enforced, static files served by the app.

`python manage.py check --deploy` with these settings reports no issues. They are the default of
every entry point (manage.py, wsgi.py): a process nobody configured must fail on a missing secret,
never run with DEBUG on and a known key. Development and the tests name their module explicitly.
"""

import os

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import MIDDLEWARE, MIGRATIONS_WORKER, SECRET_KEY, env_bool, env_list

# Said with every refusal below: from a checkout, the likely cause is a missing settings module.
FROM_A_CHECKOUT = (" (Developing from a checkout? Use the development settings: "
                   "DJANGO_SETTINGS_MODULE=config.settings.dev.)")

DEBUG = False
if len(SECRET_KEY) < 50:
    raise ImproperlyConfigured("SECRET_KEY must be set in the environment (50+ random characters)."
                               + FROM_A_CHECKOUT)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS")
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must list this deployment's host names." + FROM_A_CHECKOUT)
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "31536000"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
X_FRAME_OPTIONS = "DENY"

if "DATABASE_URL" not in os.environ or "REDIS_URL" not in os.environ:
    raise ImproperlyConfigured("DATABASE_URL and REDIS_URL must be set in the environment."
                               + FROM_A_CHECKOUT)

# Static files (the admin's CSS and JavaScript) from the app itself, as gunicorn runs it: no web
# server to configure beside it. The image runs `collectstatic` at build time into STATIC_ROOT;
# names carry a content hash (cached for a year by browsers and proxies) and are stored
# gzip-compressed beside the originals (WhiteNoise serves whichever the client accepts).
MIDDLEWARE = [*MIDDLEWARE]
MIDDLEWARE.insert(MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
                  "whitenoise.middleware.WhiteNoiseMiddleware")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# Plain `manage.py migrate` applies the pre-deploy stage only (a release step that runs it cannot
# break the release still serving) and says how to apply the rest: `migrate_online --stage post`
# after the rollout, `--stage all` on a new database (docs/deploying.md).
MIGRATIONS_WORKER = {**MIGRATIONS_WORKER, "MIGRATE_STAGE": "pre"}
