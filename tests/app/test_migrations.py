"""Migrations: empty -> head -> base -> head, on both databases, matching the models."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from app import migrate
from app.db import Base


def test_upgrade_downgrade_roundtrip(db_url: str) -> None:  # db_url arrives at head
    engine = create_engine(db_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], f"models and migrations differ: {diff}"
    migrate.downgrade(db_url, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    migrate.upgrade(db_url)
    assert {"lines", "buffer_windows", "model_versions", "training_jobs"} <= set(
        inspect(create_engine(db_url)).get_table_names())
    engine.dispose()
