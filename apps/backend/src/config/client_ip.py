"""The address a login attempt comes from, for the admin login's brute-force limit (django-axes).

Without a reverse proxy it is REMOTE_ADDR. Behind one, REMOTE_ADDR is the proxy's address, the same
for everyone, so every client would share one failure count. Each proxy appends the address it
received the request from to X-Forwarded-For; with TRUSTED_PROXIES = N, the Nth entry from the
right is what the outermost proxy saw. Entries further left came from the client and are not
trusted: reading the left-most one would let anyone pick a fresh address per attempt.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str | None:
    """The client's address as the outermost trusted proxy saw it, else REMOTE_ADDR."""
    proxies = settings.TRUSTED_PROXIES
    if proxies > 0:
        forwarded = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
                     if hop.strip()]
        if len(forwarded) >= proxies:
            return forwarded[-proxies]
    return request.META.get("REMOTE_ADDR")
