"""The FastAPI application: database, templates, session cookie, security headers, routes.

The session secret comes from ``CLINICWATCH_SECRET_KEY``; without it a random key is made at start,
so everyone must sign in again after each restart.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from claims_db.codebook import CATEGORIES, CATEGORY_DEFINITIONS
from claims_db.engine import open_database, session_factory
from monitor.config import Config
from monitor.web.deps import Forbidden, NotSignedIn
from monitor.web.routes import admin, api, login, pages
from monitor.web.security import SECURITY_HEADERS, LoginRateLimiter, SessionCookie, csrf_token

PACKAGE_DIR = Path(__file__).parent
SECRET_KEY_ENV = "CLINICWATCH_SECRET_KEY"


def format_time(value: datetime | None) -> str:
    """A timestamp as ``2026-01-31 14:05 UTC`` ('' for None)."""
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else ""


def _templates() -> Jinja2Templates:
    # autoescape=True for every template: crawled text must never become markup.
    env = Environment(loader=FileSystemLoader(PACKAGE_DIR / "templates"), autoescape=True)
    env.filters["when"] = format_time
    env.globals["CATEGORIES"] = CATEGORIES
    env.globals["CATEGORY_DEFINITIONS"] = CATEGORY_DEFINITIONS
    env.globals["csrf_token"] = lambda request: csrf_token(request.state.session)
    return Jinja2Templates(env=env)


def _install_session_and_headers(app: FastAPI, cookie: SessionCookie) -> None:
    @app.middleware("http")
    async def session_and_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        request.state.session = cookie.load(request)
        before = dict(request.state.session)
        response = await call_next(request)
        if request.state.session != before:
            cookie.save(response, request, request.state.session)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if not request.url.path.startswith("/static/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response


def _install_error_handlers(app: FastAPI) -> None:
    def wants_json(request: Request) -> bool:
        return request.url.path.startswith("/api/")

    @app.exception_handler(NotSignedIn)
    async def not_signed_in(request: Request, _exc: NotSignedIn) -> Response:
        if wants_json(request):
            return JSONResponse({"detail": "not signed in"}, status_code=401)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if wants_json(request):
            return JSONResponse(
                {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
            )
        return app.state.templates.TemplateResponse(
            request,
            "error.html",
            {"title": f"Error {exc.status_code}", "message": exc.detail},
            status_code=exc.status_code,
        )

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> Response:
        if wants_json(request):
            return JSONResponse({"detail": exc.reason}, status_code=403)
        return app.state.templates.TemplateResponse(
            request, "error.html", {"title": "Not allowed", "message": exc.reason}, status_code=403
        )


def create_app(cfg: Config, *, secret_key: str | None = None) -> FastAPI:
    """The review app on `cfg.database` (migrated to the newest schema first)."""
    app = FastAPI(
        title="clinicwatch review API",
        version="1",
        description="Sites, claims, change events and review decisions recorded by clinicwatch.",
        docs_url=None,  # Swagger UI needs inline script and a CDN; the JSON is at /api/openapi.json
        redoc_url=None,
        openapi_url=None,
    )
    engine = open_database(cfg.database)
    app.state.engine = engine
    app.state.sessions = session_factory(engine)
    app.state.templates = _templates()
    app.state.login_limiter = LoginRateLimiter()
    key = secret_key or os.environ.get(SECRET_KEY_ENV) or secrets.token_urlsafe(32)
    _install_session_and_headers(app, SessionCookie(key))
    _install_error_handlers(app)
    app.mount("/static", StaticFiles(directory=PACKAGE_DIR / "static"), name="static")
    for module in (login, pages, admin, api):
        app.include_router(module.router)
    return app
