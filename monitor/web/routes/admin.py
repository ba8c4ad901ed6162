"""User administration for admins: list accounts, add one, switch one off or on."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.responses import Response

from claims_db.models import User
from monitor.web.auth import ROLES, AccountError, add_user
from monitor.web.deps import check_csrf, get_db, require

router = APIRouter(prefix="/admin", include_in_schema=False)


def _users_page(request: Request, user: User, db: Session, error: str = "", status: int = 200):
    users = db.scalars(select(User).order_by(User.name)).all()
    return request.app.state.templates.TemplateResponse(
        request,
        "users.html",
        {"title": "Users", "user": user, "users": users, "roles": ROLES, "error": error},
        status_code=status,
    )


@router.get("/users")
def users(
    request: Request, user: User = Depends(require("admin")), db: Session = Depends(get_db)
) -> Response:
    """Every account with its role and state."""
    return _users_page(request, user, db)


@router.post("/users", dependencies=[Depends(check_csrf)])
def create_user(
    request: Request,
    name: str = Form(...),
    role: str = Form(...),
    password: str = Form(...),
    user: User = Depends(require("admin")),
    db: Session = Depends(get_db),
) -> Response:
    """Add an account (argon2-hashed password)."""
    try:
        add_user(db, name, role, password)
    except AccountError as exc:
        return _users_page(request, user, db, error=str(exc), status=400)
    return RedirectResponse("/admin/users", status_code=303)


@router.post("/users/{user_id}/active", dependencies=[Depends(check_csrf)])
def set_active(
    user_id: int,
    active: bool = Form(...),
    user: User = Depends(require("admin")),
    db: Session = Depends(get_db),
) -> Response:
    """Switch an account off (it can no longer sign in) or back on."""
    target = db.get(User, user_id)
    if target is None:
        raise HTTPException(404, f"no user with id {user_id}")
    if target.id == user.id and not active:
        raise HTTPException(400, "you cannot switch off your own account")
    target.active = active
    return RedirectResponse("/admin/users", status_code=303)
