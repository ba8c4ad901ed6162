"""Commands of the review app: ``clinicwatch serve`` and ``clinicwatch users add|list``.

`serve_command` and `users_group` are registered on the main group in `monitor.cli`.
"""

from __future__ import annotations

import os
import sys

import click
from sqlalchemy import select

from claims_db.engine import open_database, session_scope
from claims_db.models import User
from monitor.cli_support import emit_rows, output_format, pass_config
from monitor.config import Config
from monitor.web.auth import ROLES, AccountError, add_user

PASSWORD_ENV = "CLINICWATCH_PASSWORD"


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to listen on.")
@pass_config
def serve_command(cfg: Config, host: str, port: int) -> None:
    """Run the review web app for regulators.

    Set CLINICWATCH_SECRET_KEY to keep people signed in across restarts. Behind an HTTPS proxy,
    the proxy must send X-Forwarded-Proto so session cookies are marked Secure.

    Example: clinicwatch serve --port 8000
    """
    import uvicorn

    from monitor.web.app import create_app

    app = create_app(cfg)
    click.echo(f"clinicwatch review app on http://{host}:{port}/ (Ctrl+C to stop)", err=True)
    uvicorn.run(app, host=host, port=port, proxy_headers=True, log_level="info")


@click.group("users")
def users_group() -> None:
    """Accounts of the review app (admin, reviewer, viewer)."""


def read_password() -> str:
    """The new password: $CLINICWATCH_PASSWORD, else a hidden prompt (TTY) or stdin's first line."""
    from_env = os.environ.get(PASSWORD_ENV)
    if from_env:
        return from_env
    if sys.stdin.isatty():
        return click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return sys.stdin.readline().rstrip("\r\n")


@users_group.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True, help="What the user may do.")
@pass_config
def users_add(cfg: Config, name: str, role: str) -> None:
    """Create a user; the password comes from stdin or $CLINICWATCH_PASSWORD.

    Example: echo 's3cret-passphrase' | clinicwatch users add alice --role reviewer
    """
    password = read_password()
    engine = open_database(cfg.database)
    try:
        with session_scope(engine) as session:
            add_user(session, name, role, password)
    except AccountError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        engine.dispose()
    click.echo(f"added {role} {name!r}")


@users_group.command("list")
@output_format
@pass_config
def users_list(cfg: Config, fmt: str) -> None:
    """List the users with their role and state (never their password hash).

    Example: clinicwatch users list --format table
    """
    engine = open_database(cfg.database)
    with session_scope(engine) as session:
        rows = [
            {"name": u.name, "role": u.role, "active": u.active, "created_at": u.created_at}
            for u in session.scalars(select(User).order_by(User.name))
        ]
    engine.dispose()
    emit_rows(rows, fmt, ["name", "role", "active", "created_at"])
