"""Browser-facing protections: signed session cookie, CSRF tokens, login rate limit, headers.

The session lives in a signed cookie (itsdangerous), so nothing is stored server-side; the cookie
is HttpOnly and SameSite=Lax always, and Secure whenever the request came over HTTPS.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

SESSION_COOKIE = "clinicwatch_session"
SESSION_MAX_AGE = 12 * 3600
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Following a live-page link must not tell the clinic that a regulator is looking.
    "Referrer-Policy": "no-referrer",
}


class SessionCookie:
    """Reads and writes the session dict as a signed, time-limited cookie."""

    def __init__(self, secret_key: str, max_age: int = SESSION_MAX_AGE) -> None:
        self.serializer = URLSafeTimedSerializer(secret_key, salt="clinicwatch-session")
        self.max_age = max_age

    def load(self, request: Request) -> dict[str, Any]:
        """The session of `request`; a missing, forged or expired cookie gives an empty one."""
        raw = request.cookies.get(SESSION_COOKIE)
        if not raw:
            return {}
        try:
            data = self.serializer.loads(raw, max_age=self.max_age)
        except BadSignature:
            return {}
        return data if isinstance(data, dict) else {}

    def save(self, response: Response, request: Request, data: dict[str, Any]) -> None:
        """Set (or, for an empty session, delete) the cookie on `response`."""
        secure = request.url.scheme == "https"
        if not data:
            response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="lax", secure=secure)
            return
        response.set_cookie(
            SESSION_COOKIE,
            self.serializer.dumps(data),
            max_age=self.max_age,
            httponly=True,
            samesite="lax",
            secure=secure,
            path="/",
        )


def csrf_token(session: dict[str, Any]) -> str:
    """The session's CSRF token, created on first use."""
    token = session.get("csrf")
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def csrf_valid(session: dict[str, Any], submitted: str | None) -> bool:
    """True when `submitted` matches the session's token (compared in constant time)."""
    expected = session.get("csrf")
    if not isinstance(expected, str) or not expected or not submitted:
        return False
    return hmac.compare_digest(expected.encode(), submitted.encode())


class LoginRateLimiter:
    """At most `max_failures` failed sign-ins per (client address, user name) per `window` seconds.

    Kept in memory: it resets when the server restarts and is per process, which is enough to
    make password guessing slow against a single `clinicwatch serve`.
    """

    def __init__(
        self,
        max_failures: int = 5,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.clock = clock
        self._failures: dict[tuple[str, str], deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _recent(self, key: tuple[str, str]) -> deque[float]:
        times = self._failures[key]
        horizon = self.clock() - self.window
        while times and times[0] <= horizon:
            times.popleft()
        return times

    def retry_after(self, client: str, username: str) -> int:
        """Seconds to wait before another attempt is allowed; 0 when one is allowed now."""
        key = (client, username.casefold())
        with self._lock:
            times = self._recent(key)
            if len(times) < self.max_failures:
                if not times:
                    self._failures.pop(key, None)
                return 0
            return max(1, int(times[0] + self.window - self.clock()) + 1)

    def record_failure(self, client: str, username: str) -> None:
        """Count one failed attempt."""
        key = (client, username.casefold())
        with self._lock:
            self._recent(key).append(self.clock())

    def reset(self, client: str, username: str) -> None:
        """Forget failures after a successful sign-in."""
        with self._lock:
            self._failures.pop((client, username.casefold()), None)
