"""Alembic environment, driven from code (see faceledger.adapters.store.migrate).

The caller hands over an open connection in ``config.attributes["connection"]`` so that
migrations run inside the same engine settings (SQLite pragmas) as the application. Offline
mode (``--sql``) renders the DDL for another dialect, e.g. to review it for PostgreSQL.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from faceledger.adapters.store.tables import metadata

config = context.config


def run_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    connection = config.attributes.get("connection")
    if connection is None:
        from sqlalchemy import create_engine

        engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
        with engine.begin() as conn:
            run_online(conn)
        engine.dispose()
    else:
        run_online(connection)
