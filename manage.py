#!/usr/bin/env python
"""Django's command-line entry point; puts the engine and the backend's source folders on the import path
(this checkout's, before any installed copy)."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path[:0] = [str(ROOT / "engine"), str(ROOT / "apps" / "backend" / "src")]


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
