"""Databases for tests: a fresh SQLite file per test, and PostgreSQL (a schema per session,
tables emptied per test) where one answers. CI sets LIFELINE_REQUIRE_POSTGRES=1: there a missing
PostgreSQL fails the run instead of skipping."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch
from sqlalchemy import create_engine, text

from app import migrate
from app.db import Base
from bench.server import scratch_schema

PG_BASE = os.environ.get("LIFELINE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REQUIRE_PG = os.environ.get("LIFELINE_REQUIRE_POSTGRES") == "1"

torch.set_num_threads(min(2, os.cpu_count() or 1))


def _pg_available() -> str | None:
    try:
        with create_engine(PG_BASE).connect() as c:
            c.execute(text("SELECT 1"))
        return None
    except Exception as exc:  # any failure to connect means: no PostgreSQL here
        return f"no PostgreSQL at {PG_BASE} ({type(exc).__name__}); set LIFELINE_TEST_PG_URL"


@contextmanager
def pg_schema(prefix: str = "lifeline_test") -> Iterator[str]:
    """The URL of a new, empty PostgreSQL schema, dropped afterwards."""
    with scratch_schema(PG_BASE, prefix) as url:
        yield url


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    why = _pg_available()
    if why:
        if REQUIRE_PG:
            pytest.fail(why)
        pytest.skip(why)
    with pg_schema() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A migrated, empty database of each kind."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'lifeline.db'}"
        migrate.upgrade(url)
        yield url
        return
    url = request.getfixturevalue("pg_url")
    migrate.upgrade(url)
    engine = create_engine(url)
    with engine.begin() as c:
        names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        c.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()
    yield url
