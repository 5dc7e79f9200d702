#!/usr/bin/env bash
# The Compose CLI the compose tests resolve docker-compose.yml with (tests/deploy/compose.py):
# `docker compose` (the plugin) when it works, else Debian's `docker-compose` (Compose v1). Neither
# needs a Docker daemon to run `config`, so the tests check the file on machines without Docker.
#
#   deploy/compose_cli.sh      make sure one is there: as root, apt-get install docker-compose
#                              (without docker.io, which it only recommends); otherwise say what
#                              to install and exit 2
#
# Idempotent and quick when one is already installed; `make test` runs it first.
set -euo pipefail

say() { printf '[compose] %s\n' "$*"; }

if command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
  say "present: $(docker compose version)"
  exit 0
fi
if command -v docker-compose >/dev/null 2>&1; then
  say "present: $(docker-compose version --short 2>/dev/null || command -v docker-compose)"
  exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  say "installing docker-compose with apt-get (for the compose tests)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
  command -v docker-compose >/dev/null 2>&1 \
    || { say "error: apt-get installed docker-compose but it is not on PATH" >&2; exit 2; }
  say "installed: $(docker-compose version --short 2>/dev/null)"
  exit 0
fi
say "error: neither \`docker compose\` nor \`docker-compose\` is installed and this is not root:" >&2
say "         sudo apt-get install --no-install-recommends docker-compose" >&2
say "       (or Docker's compose plugin); the compose tests (tests/deploy/test_compose_*.py) fail" >&2
say "       until one is there" >&2
exit 2
