"""Alembic environment: the URL comes from the caller's config or from Settings."""

from __future__ import annotations

from alembic import context
from sqlalchemy import pool, text

from app import tables  # noqa: F401  (registers every table on Base.metadata)
from app.db import Base, make_engine
from app.settings import get_settings

# Replicas that start together on one PostgreSQL each migrate on start; without a lock two of
# three crashed creating the same tables (UniqueViolation on pg_type). The transaction-scoped
# advisory lock queues them: the next one reads the version table only after the first
# committed, and finds nothing to do. Any constant works; this one spells "lifeline".
_PG_MIGRATION_LOCK = 0x6C6966656C696E65
config = context.config
url = config.get_main_option("sqlalchemy.url") or get_settings().database_url
target_metadata = Base.metadata


def run_offline() -> None:
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=url.startswith("sqlite"))
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    engine = make_engine(url) if url.startswith("sqlite") else None
    if engine is None:
        from sqlalchemy import create_engine

        engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        # render_as_batch: SQLite cannot ALTER most things; batch mode recreates tables. With
        # foreign keys on, recreating a parent table (lines) cascade-deletes its children:
        # prefer op.add_column / op.drop_column, which SQLite >= 3.35 does in place.
        context.configure(connection=conn, target_metadata=target_metadata,
                          render_as_batch=conn.dialect.name == "sqlite")
        with context.begin_transaction():
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
