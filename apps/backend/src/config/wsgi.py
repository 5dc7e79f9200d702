"""WSGI entry point for gunicorn (`config.wsgi:application`); production settings unless
DJANGO_SETTINGS_MODULE names others, as for manage.py."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

from django.core.wsgi import get_wsgi_application

application = get_wsgi_application()
