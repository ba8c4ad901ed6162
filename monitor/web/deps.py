"""FastAPI dependencies: the database session, the signed-in user, role checks and CSRF checks.

Every route declares the role it needs with `Depends(require("viewer"|"reviewer"|"admin"))`;
`tests/test_web_security.py` walks the route table to make sure none is left open.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from claims_db.models import User
from monitor.web.auth import has_role
from monitor.web.security import CSRF_FIELD, CSRF_HEADER, csrf_valid


class NotSignedIn(Exception):
    """No valid session: pages redirect to /login, the API answers 401."""


class Forbidden(Exception):
    """Signed in, but the role (or the CSRF token) does not allow this: 403."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def get_db(request: Request) -> Iterator[Session]:
    """A session for this request, committed when the route returns without error."""
    with request.app.state.sessions.begin() as session:
        yield session


def session_data(request: Request) -> dict[str, Any]:
    """The decoded session cookie (a dict the route may change; the middleware saves it)."""
    return request.state.session


def current_user(request: Request, db: Session = Depends(get_db)) -> User | None:
    """The signed-in, still active user, or None."""
    user_id = session_data(request).get("uid")
    if not isinstance(user_id, int):
        return None
    user = db.get(User, user_id)
    if user is None or not user.active:
        return None
    return user


def require(role: str) -> Callable[..., User]:
    """A dependency that returns the user if they hold at least `role`."""

    def dependency(user: User | None = Depends(current_user)) -> User:
        if user is None:
            raise NotSignedIn()
        if not has_role(user.role, role):
            raise Forbidden(f"this needs the {role} role; you are signed in as a {user.role}")
        return user

    dependency.required_role = role  # type: ignore[attr-defined]
    return dependency


async def check_csrf(request: Request) -> None:
    """Reject a state-changing request whose CSRF token (form field or header) is wrong."""
    submitted = request.headers.get(CSRF_HEADER)
    if submitted is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        submitted = value if isinstance(value, str) else None
    if not csrf_valid(session_data(request), submitted):
        raise Forbidden("missing or wrong CSRF token: reload the page and try again")
