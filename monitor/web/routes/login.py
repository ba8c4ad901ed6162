"""Sign-in and sign-out. The only routes (with /static) reachable without a session."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse
from sqlalchemy.orm import Session
from starlette.responses import Response

from monitor.web.auth import authenticate
from monitor.web.deps import check_csrf, get_db, session_data

router = APIRouter(include_in_schema=False)
PUBLIC_PATHS = frozenset({"/login"})


def safe_next(target: str | None) -> str:
    """`target` if it is a path on this site, else the sites list (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/sites"
    return target


def _login_page(request: Request, *, error: str = "", next_url: str = "", status: int = 200):
    return request.app.state.templates.TemplateResponse(
        request,
        "login.html",
        {"title": "Sign in", "error": error, "next_url": next_url, "user": None},
        status_code=status,
    )


@router.get("/login")
def login_form(request: Request, next: str = "") -> Response:
    """The sign-in form."""
    return _login_page(request, next_url=safe_next(next))


@router.post("/login", dependencies=[Depends(check_csrf)])
def login(
    request: Request,
    username: str = Form(""),
    password: str = Form(""),
    next: str = Form("/sites"),
    db: Session = Depends(get_db),
) -> Response:
    """Check the password; at most a few failures per minute per address and user name."""
    limiter = request.app.state.login_limiter
    client = request.client.host if request.client else "unknown"
    wait = limiter.retry_after(client, username)
    if wait:
        response = _login_page(
            request,
            error=f"Too many failed sign-ins. Try again in {wait} seconds.",
            next_url=safe_next(next),
            status=429,
        )
        response.headers["Retry-After"] = str(wait)
        return response
    user = authenticate(db, username, password)
    if user is None:
        limiter.record_failure(client, username)
        return _login_page(
            request, error="Wrong user name or password.", next_url=safe_next(next), status=401
        )
    limiter.reset(client, username)
    session = session_data(request)
    session.clear()  # a fresh session (and CSRF token) at every sign-in
    session["uid"] = user.id
    return RedirectResponse(safe_next(next), status_code=303)


@router.post("/logout", dependencies=[Depends(check_csrf)])
def logout(request: Request) -> Response:
    """End the session."""
    session_data(request).clear()
    return RedirectResponse("/login", status_code=303)
