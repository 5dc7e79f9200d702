"""Settings shared by every environment, read from the environment (12-factor).

Only PostgreSQL is accepted: the online migration engine depends on its locking
(`FOR UPDATE SKIP LOCKED`, `lock_timeout`, concurrent index builds), so a wrong
`DATABASE_URL` must fail at start-up, not half-way through a migration.
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from migrations_worker import targets as mw_targets

SRC_DIR = Path(__file__).resolve().parents[2]
PROJECT_DIR = SRC_DIR.parents[2]

LOCAL_DATABASE_URL = "postgres://postgres@127.0.0.1:55432/investments"
LOCAL_REDIS_URL = "redis://127.0.0.1:56379/0"


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def postgres_database(url: str) -> dict:
    """Parse DATABASE_URL, refusing any engine but PostgreSQL with a message that says why."""
    config = dj_database_url.parse(url, conn_max_age=0)
    if config["ENGINE"] != "django.db.backends.postgresql":
        scheme = url.split(":", 1)[0]
        raise ImproperlyConfigured(
            f"DATABASE_URL uses '{scheme}', but this project runs only on PostgreSQL: the online "
            "migration engine needs row locks with SKIP LOCKED, lock_timeout and concurrent index "
            "builds. Use a postgres:// URL."
        )
    config.setdefault("OPTIONS", {})["application_name"] = os.environ.get(
        "DB_APPLICATION_NAME", "investments"
    )
    return config


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_results",
    "axes",
    "migrations_worker",
    "assets",
    "portfolios",
    "investments",
    "seed",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # A NUL byte in a path, query or form is a 400 (PostgreSQL's text cannot hold it).
    "migrations_worker.ops.middleware.RejectNulBytes",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes requires: turns a locked-out login into its 429 answer.
    "axes.middleware.AxesMiddleware",
]

# The admin login's brute-force limit (django-axes): after AXES_FAILURE_LIMIT failed logins of one
# username from one client address, that pair is refused, even with the right password, for
# AXES_COOLOFF_MINUTES. Failures are kept in the database, so every web process shares them.
# Reset: `manage.py axes_reset_username NAME` (or `axes_reset`, everything); docs/operating.md.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out login before the check
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = int(os.environ.get("AXES_FAILURE_LIMIT", "5"))
AXES_COOLOFF_MINUTES = int(os.environ.get("AXES_COOLOFF_MINUTES", "15"))
AXES_COOLOFF_TIME = timedelta(minutes=AXES_COOLOFF_MINUTES)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_COOLOFF_MESSAGE = (f"Account locked: too many failed logins. Try again in "
                        f"{AXES_COOLOFF_MINUTES} minutes, or ask an operator to unlock it.")
# The client's address: REMOTE_ADDR, or behind TRUSTED_PROXIES reverse proxies (each appending
# to X-Forwarded-For) the address the outermost of them saw (config/client_ip.py).
TRUSTED_PROXIES = int(os.environ.get("TRUSTED_PROXIES", "0"))
AXES_CLIENT_IP_CALLABLE = "config.client_ip.client_ip"

# Every password set through Django's forms or `manage.py create_operator` must pass these; the
# admin is an operator's control of live migrations, so 12 characters at least.
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
     "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# The databases the online migration service migrates: `default`, plus those a targets file
# declares (MW_TARGETS_FILE; docs/targets.md). No file: `default` alone, as ever.
TARGETS = mw_targets.load(os.environ.get("MW_TARGETS_FILE"), os.environ)
DATABASES = mw_targets.databases(
    TARGETS, postgres_database(os.environ.get("DATABASE_URL", LOCAL_DATABASE_URL)))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = os.environ.get("STATIC_ROOT", str(PROJECT_DIR / ".local" / "static"))

REDIS_URL = os.environ.get("REDIS_URL", LOCAL_REDIS_URL)

# Celery: see engine/migrations_worker/celery.py for the task-level guarantees.
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {"migrations_worker.*": {"queue": "migrations"}}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BEAT_SCHEDULE_FILENAME = str(PROJECT_DIR / ".local" / "celerybeat-schedule")

CELERY_BEAT_SCHEDULE = {
    "requeue-stale-runs": {
        "task": "migrations_worker.requeue_stale_runs",
        "schedule": float(os.environ.get("MW_REQUEUE_INTERVAL_SECONDS", "15")),
    },
    # Open fleet rollouts go on without the `fleet rollout` command that started them.
    "advance-rollouts": {
        "task": "migrations_worker.advance_rollouts",
        "schedule": float(os.environ.get("MW_FLEET_ADVANCE_SECONDS", "5")),
    },
}

# The engine's settings (the rest keep the defaults in engine/migrations_worker/conf.py, listed in
# docs/engine-install.md); each can be overridden per job class and per run.
MIGRATIONS_WORKER = {
    "STALE_HEARTBEAT_SECONDS": int(os.environ.get("MW_STALE_HEARTBEAT_SECONDS", "60")),
    # A gated migration finishes a job inline when at most this many rows are left.
    "GATE_INLINE_LIMIT": int(os.environ.get("MW_GATE_INLINE_LIMIT", "10000")),
    # The apps whose migrations `manage.py lint_migrations` checks (the engine names none itself).
    "LINT_APPS": ["assets", "portfolios", "investments", "migrations_worker"],
    # The streaming standbys this site has: their application_names ("a,b"), or how many ("2").
    # One that is not connected, or whose lag cannot be read, holds every run (docs/operating.md, "Standbys").
    "STANDBYS": os.environ.get("MW_EXPECTED_STANDBYS", ""),
    # At most this many databases of one PostgreSQL server are migrated at once; the others wait
    # (hold `server_busy`). 0: no limit (docs/operating.md, "Per-server limit").
    "SERVER_LIMIT": int(os.environ.get("MW_SERVER_LIMIT", "4")),
    # Each target's labels (server, region, ...), by alias.
    "TARGETS": mw_targets.labels(TARGETS),
    # A batch's statements prepared once per worker session; 0 behind a pooler that drops
    # prepared statements between transactions (docs/engine-install.md).
    "PREPARED_STATEMENTS": env_bool("MW_PREPARED_STATEMENTS", True),
}
# The read-only status API (/ops/runs.json, /ops/metrics) also accepts
# `Authorization: Bearer <MW_STATUS_TOKEN>`, for dashboards and deploy pipelines; empty: off.
MW_STATUS_TOKEN = os.environ.get("MW_STATUS_TOKEN", "")
# Where operators find Flower; the admin's run page links there when it is set.
MW_FLOWER_URL = os.environ.get("MW_FLOWER_URL", "")

# MW_LOG_FORMAT=json: every process (web, commands, workers, beat) logs one JSON object per line,
# with what a record is about (run, job, target, batch) as fields (migrations_worker.logs).
LOG_FORMATS = {"text": "plain", "json": "json"}
LOG_FORMAT = os.environ.get("MW_LOG_FORMAT", "text").strip().lower() or "text"
if LOG_FORMAT not in LOG_FORMATS:
    raise ImproperlyConfigured(
        f"MW_LOG_FORMAT={LOG_FORMAT!r}: choose {' or '.join(LOG_FORMATS)} (default text)")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
                   "json": {"()": "migrations_worker.logs.JsonFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler",
                             "formatter": LOG_FORMATS[LOG_FORMAT]}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # axes.apps: its version banner on every start of every command, not worth a line.
    "loggers": {"django.db.backends": {"level": "WARNING"}, "axes.apps": {"level": "WARNING"}},
}
