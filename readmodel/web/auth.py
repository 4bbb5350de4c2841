"""Access (contract §10): a bearer token for the API, a session cookie for the dashboard.

The cookie holds an HMAC of the token, not the token, so a cookie leaked from a browser
profile is not a bearer token for scripts; changing the token logs every browser out.
"""

from __future__ import annotations

import hashlib
import hmac

from fastapi import Request

COOKIE = "smstally_session"


def session_value(token: str) -> str:
    return hmac.new(token.encode(), b"smstally dashboard session v1", hashlib.sha256).hexdigest()


def bearer_ok(request: Request, token: str) -> bool:
    h = request.headers.get("authorization", "")
    scheme, _, value = h.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())


def cookie_ok(request: Request, token: str) -> bool:
    c = request.cookies.get(COOKIE)
    return c is not None and hmac.compare_digest(c.encode(), session_value(token).encode())


def authorized(request: Request, token: str | None) -> bool:
    if token is None:
        return True
    return bearer_ok(request, token) or cookie_ok(request, token)


def safe_next(path: str | None) -> str:
    """Where to go after logging in: only a path of this site (no open redirect)."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path
