"""`GET /ops/health`, what docker-compose's web health check asks: the database answers, or not."""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

DB_PASSWORD = secrets.token_urlsafe(16)  # of a server that is not there

ROOT = Path(__file__).resolve().parents[2]

# A process of its own whose database is a closed port: the view must say 503, not raise.
_ASK_HEALTH = """
import django, json
django.setup()
from django.test import Client
response = Client(HTTP_HOST="localhost").get("/ops/health")
print(json.dumps({"status": response.status_code, "body": response.json()}))
"""


@pytest.mark.django_db
def test_health_is_ok_without_credentials_when_the_database_answers(client):
    response = client.get("/ops/health")
    assert response.status_code == 200
    assert response.json() == {"database": "ok"}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
def test_health_only_answers_reads(client):
    assert client.post("/ops/health").status_code == 405


def test_health_is_503_and_says_no_more_when_the_database_does_not_answer():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test",
           "DATABASE_URL": f"postgres://postgres:{DB_PASSWORD}@127.0.0.1:9/unreachable",
           "PYTHONPATH": os.pathsep.join(map(str, (ROOT, ROOT / "engine", ROOT / "apps/backend/src")))}
    result = subprocess.run([sys.executable, "-c", _ASK_HEALTH], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer == {"status": 503, "body": {"database": "unavailable"}}
    assert DB_PASSWORD not in result.stdout
