#!/usr/bin/env python
"""Django's command-line entry point; puts the engine and the backend's source folders on the import path
(this checkout's, before any installed copy).

Without DJANGO_SETTINGS_MODULE it takes the production settings, as wsgi.py does: a process nobody
configured then refuses to start for want of a secret key or host list, instead of running with
DEBUG on and a known key. Development names its settings: `make` and deploy/demo.sh set
config.settings.dev, pytest config.settings.test (pyproject.toml).
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path[:0] = [str(ROOT / "engine"), str(ROOT / "apps" / "backend" / "src")]


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
