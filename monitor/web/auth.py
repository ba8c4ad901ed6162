"""Accounts of the review app: argon2 password hashes, sign-in checks and roles.

Roles are ordered: a viewer reads, a reviewer also records decisions, an admin also manages users.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from claims_db.models import User

ROLES: tuple[str, ...] = ("viewer", "reviewer", "admin")
_RANK = {role: rank for rank, role in enumerate(ROLES)}
MIN_PASSWORD_LENGTH = 8

_hasher = PasswordHasher()
# Verifying against this when the user does not exist costs the same time as a real check,
# so response times do not reveal which account names exist.
_DUMMY_HASH = _hasher.hash("clinicwatch-no-such-user")


class AccountError(ValueError):
    """A user cannot be created or changed as asked; the message says why."""


def hash_password(password: str) -> str:
    """An argon2id hash of `password` (salted; parameters encoded in the string)."""
    return _hasher.hash(password)


def has_role(role: str, required: str) -> bool:
    """True when `role` is at least `required` (viewer < reviewer < admin)."""
    return _RANK.get(role, -1) >= _RANK[required]


def validate_account(name: str, role: str, password: str) -> None:
    """Raise `AccountError` for an unusable name, unknown role or too-short password."""
    if not name or len(name) > 100 or not name.isprintable() or name.strip() != name:
        raise AccountError(f"invalid user name {name!r} (1–100 printable characters)")
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r} (roles: {', '.join(ROLES)})")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"password too short (at least {MIN_PASSWORD_LENGTH} characters)")


def add_user(session: Session, name: str, role: str, password: str) -> User:
    """Create an active user with an argon2 password hash; `AccountError` if it cannot be."""
    validate_account(name, role, password)
    if session.scalar(select(User.id).where(User.name == name)) is not None:
        raise AccountError(f"a user named {name!r} already exists")
    user = User(name=name, role=role, password_hash=hash_password(password), active=True)
    session.add(user)
    session.flush()
    return user


def authenticate(session: Session, name: str, password: str) -> User | None:
    """The active user `name` if `password` is right, else None (same cost either way)."""
    user = session.scalar(select(User).where(User.name == name))
    stored = user.password_hash if user is not None else _DUMMY_HASH
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or not user.active:
        return None
    if _hasher.check_needs_rehash(stored):
        user.password_hash = hash_password(password)
    return user
