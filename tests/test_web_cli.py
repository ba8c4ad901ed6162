"""`clinicwatch users add|list` and `clinicwatch serve` (the review app's commands)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import click
import httpx2
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from claims_db.engine import open_database, session_scope
from claims_db.models import User
from monitor.cli_support import CliContext
from monitor.web.cli import serve_command, users_group


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "clinicwatch.yaml"
    path.write_text("database: sqlite:///review.db\n", encoding="utf-8")
    return path


def invoke(config_file: Path, args: list[str], **kwargs):
    group = click.Group(commands={"users": users_group, "serve": serve_command})
    return CliRunner().invoke(group, args, obj=CliContext(config_file), **kwargs)


def stored_users(config_file: Path) -> list[User]:
    engine = open_database(f"sqlite:///{config_file.parent / 'review.db'}")
    with session_scope(engine) as session:
        users = list(session.scalars(select(User).order_by(User.name)))
    engine.dispose()
    return users


def test_users_add_reads_the_password_from_stdin(config_file):
    result = invoke(
        config_file, ["users", "add", "alice", "--role", "reviewer"], input="s3cret-pass\n"
    )
    assert result.exit_code == 0, result.output
    assert "added reviewer 'alice'" in result.output
    [user] = stored_users(config_file)
    assert (user.name, user.role, user.active) == ("alice", "reviewer", True)
    assert user.password_hash.startswith("$argon2id$")


def test_users_add_reads_the_password_from_the_environment(config_file):
    result = invoke(
        config_file,
        ["users", "add", "bob", "--role", "admin"],
        env={"CLINICWATCH_PASSWORD": "from-the-env"},
    )
    assert result.exit_code == 0, result.output
    listing = invoke(config_file, ["users", "list", "--format", "csv"])
    assert listing.output.splitlines()[1].startswith("bob,admin,True,")
    assert "argon2" not in listing.output


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["users", "add", "carol", "--role", "reviewer"], "short\n", "password too short"),
        (
            ["users", "add", "carol", "--role", "boss"],
            "long-enough\n",
            "Invalid value for '--role'",
        ),
    ],
)
def test_users_add_refuses_bad_input(config_file, args, stdin, message):
    result = invoke(config_file, args, input=stdin)
    assert result.exit_code != 0
    assert message in result.output
    assert stored_users(config_file) == []


def test_users_add_refuses_a_duplicate_name(config_file):
    invoke(config_file, ["users", "add", "dora", "--role", "viewer"], input="long-enough\n")
    again = invoke(config_file, ["users", "add", "dora", "--role", "admin"], input="long-enough\n")
    assert again.exit_code == 1
    assert "already exists" in again.output
    assert [u.role for u in stored_users(config_file)] == ["viewer"]


def test_serve_runs_uvicorn_with_the_app(config_file, monkeypatch):
    import socket

    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    servers: list[uvicorn.Server] = []
    original_init = uvicorn.Server.__init__

    def remember(self, config):  # so the test can stop the server it started
        original_init(self, config)
        servers.append(self)

    monkeypatch.setattr(uvicorn.Server, "__init__", remember)
    thread = threading.Thread(
        target=invoke, args=(config_file, ["serve", "--port", str(port)]), daemon=True
    )
    thread.start()
    try:
        response = None
        for _ in range(100):
            try:
                response = httpx2.get(f"http://127.0.0.1:{port}/login")
                break
            except httpx2.TransportError:
                time.sleep(0.1)
        assert response is not None and response.status_code == 200
        assert 'name="password"' in response.text
        assert httpx2.get(f"http://127.0.0.1:{port}/api/sites").status_code == 401
    finally:
        for server in servers:
            server.should_exit = True
        thread.join(timeout=10)
