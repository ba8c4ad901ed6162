"""Alembic environment: uses the connection handed over by `claims_db.engine.migrate`."""

from alembic import context
from sqlalchemy import create_engine

from claims_db.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    """Run with the caller's connection, or one made from sqlalchemy.url (alembic CLI)."""
    connection = config.attributes.get("connection")
    if connection is None:
        engine = create_engine(config.get_main_option("sqlalchemy.url"))
        with engine.begin() as connection:
            _run(connection)
    else:
        _run(connection)


def _include_object(obj, name, type_, reflected, compare_to) -> bool:
    """Leave tables that others own alone (APScheduler's job store lives in the same database)."""
    return not (type_ == "table" and reflected and name not in target_metadata.tables)


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_object=_include_object,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
