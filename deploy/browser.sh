#!/usr/bin/env bash
# The headless browser the admin's browser tests drive: Debian's `chromium`, through Playwright's
# Python package (no browser download: tests launch /usr/bin/chromium).
#
#   deploy/browser.sh          make sure it is there: as root, apt-get install it when missing;
#                              otherwise say what to install and exit 2
#   deploy/browser.sh path     print the executable's path (exit 1 when missing)
#
# Idempotent and quick when chromium is already installed; `make test` runs it first.
set -euo pipefail
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}

say() { printf '[browser] %s\n' "$*"; }

case "${1:-ensure}" in
  path)
    [ -x "$CHROMIUM" ] && { echo "$CHROMIUM"; exit 0; }
    exit 1
    ;;
  ensure) ;;
  *) echo "usage: $0 [ensure|path]" >&2; exit 2 ;;
esac

if [ -x "$CHROMIUM" ]; then
  say "chromium present: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
  exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  say "installing chromium with apt-get (for the admin's browser tests)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  [ -x "$CHROMIUM" ] || { say "error: apt-get installed chromium but $CHROMIUM is missing" >&2; exit 2; }
  say "chromium installed: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
  exit 0
fi
say "error: $CHROMIUM is missing and this is not root: install it with" >&2
say "         sudo apt-get install chromium" >&2
say "       the browser tests (tests/ops/test_admin_browser.py) fail until it is there" >&2
exit 2
