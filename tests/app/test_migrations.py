"""Migrations: empty -> head -> base -> head, on both databases, matching the models."""

import json
import multiprocessing
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, create_engine, inspect, text
from sqlalchemy.orm import Session

from app import cli, migrate
from app.auth import authenticate, hash_key, may_post
from app.db import Base, utcnow
from app.settings import get_settings
from models import TrainConfig, to_bytes, train_student
from models.synthetic import make_windows
from tests.conftest import pg_schema


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


def _old_line(conn: Connection, line_id: str, channels: str = '["a"]') -> None:
    """A line as every revision since 0001 takes it: raw SQL, as the models describe head
    (the columns added since have defaults)."""
    conn.execute(text(
        "INSERT INTO lines (id, channels, \"window\", retrain_interval_s, min_windows, "
        "promotion, target_false_alarm_rate, buffer_limit, buffer_seen, buffer_dropped, "
        f"created_at, updated_at) VALUES (:id, '{channels}', 8, 60, 20, 'auto', 0.01, 100, 0, 0, "
        ":t, :t)"), {"id": line_id, "t": utcnow()})


def test_learn_flagged_until_migrates_without_losing_a_row(db_url: str) -> None:
    """0001 <-> 0002 on a database holding a line and its buffer: on SQLite a batch migration
    that recreated `lines` would cascade-delete every buffered window (foreign keys are on)."""
    migrate.downgrade(db_url, "0001")
    engine = create_engine(db_url)
    with engine.begin() as conn:
        _old_line(conn, "l1")
        conn.execute(text("INSERT INTO buffer_windows (line_id, \"values\", received_at) "
                          "VALUES ('l1', :v, :t)"), {"v": b"\0" * 32, "t": utcnow()})
    for revision in ("head", "0001", "head"):
        (migrate.upgrade if revision == "head" else migrate.downgrade)(db_url, revision)
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT count(*) FROM buffer_windows")) == 1, revision
            assert conn.scalar(text("SELECT count(*) FROM lines")) == 1, revision
    with engine.connect() as conn:  # 0003: a line from before gets no shape-only channel
        marked = conn.scalar(text("SELECT shape_only_channels FROM lines"))
        held = conn.scalar(text("SELECT buffer_windows FROM lines"))  # 0007: counted once
    assert (json.loads(marked) if isinstance(marked, str) else marked) == []
    assert held == 1
    engine.dispose()


def test_lines_whose_first_model_has_no_axes_migrate_to_principal_axes_false(db_url: str
                                                                             ) -> None:
    """0004 reads each line's first artifact: a line trained on the sensors' own axes (before
    session 16) keeps them through every retrain, so its setting must say false."""
    x = make_windows(100, 3, 8, 0, seed=1)
    cfg = TrainConfig(max_epochs=1, calibration_folds=0)
    own = to_bytes(train_student(x, cfg=replace(cfg, decorrelate=False)).detector)
    axes = to_bytes(train_student(x, cfg=cfg).detector)
    migrate.downgrade(db_url, "0003")
    engine = create_engine(db_url)
    with engine.begin() as conn:
        for line in ("old", "new", "bare"):
            _old_line(conn, line, channels='["a", "b", "c"]')
        for line, version, artifact in (("old", 1, own), ("old", 2, own), ("new", 1, axes)):
            conn.execute(text(
                "INSERT INTO model_versions (line_id, version, status, regimes, threshold, "
                "metrics, reasons, artifact, trained_window_ids, created_at) VALUES (:line, "
                ":v, 'active', 1, 1.0, '{}', '[]', :a, :ids, :t)"),
                {"line": line, "v": version, "a": artifact, "ids": b"", "t": utcnow()})
    migrate.upgrade(db_url)
    with engine.connect() as conn:
        got = dict(conn.execute(text("SELECT id, principal_axes FROM lines")).all())
    assert {k: bool(v) for k, v in got.items()} == {"old": False, "new": True, "bare": True}
    engine.dispose()


def test_keys_from_before_0014_post_to_every_line(db_url: str) -> None:
    migrate.downgrade(db_url, "0013")
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO api_keys (name, role, key_hash, prefix, created_at) "
                          "VALUES ('gw', 'gateway', :h, 'll_x', :t)"),
                     {"h": hash_key("ll_x-old"), "t": utcnow()})
    migrate.upgrade(db_url)
    with Session(engine) as s:
        who = authenticate(s, "Bearer ll_x-old", "gateway")
    assert who.lines is None
    may_post(who, "any-line")  # no 403
    engine.dispose()


def test_a_release_started_on_a_newer_schema_says_how_to_go_back(
        db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A release rolled back over a database a newer one migrated: alembic alone said only
    "Can't locate revision"; the way back is the newer release's downgrade."""
    newest = ScriptDirectory.from_config(migrate.alembic_config(db_url)).get_current_head()
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0999'"))
    monkeypatch.setenv("LIFELINE_DATABASE_URL", db_url)
    get_settings.cache_clear()
    try:
        assert cli.main(["migrate"]) == 1
    finally:
        get_settings.cache_clear()
    said = capsys.readouterr().err
    assert "migrated by a newer release" in said and f"lifeline migrate {newest} --down" in said
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": newest})
    engine.dispose()


def test_buffer_ids_from_0008_on_pass_every_id_a_version_trained_on(tmp_path: Path) -> None:
    """A SQLite database from before 0008 whose buffer was emptied by a training: new windows
    must not take the ids that version's list names (a rollback would delete them).
    PostgreSQL's sequence never issued them twice in the first place."""
    db_url = f"sqlite:///{tmp_path / 'old.db'}"
    migrate.upgrade(db_url, "0007")
    engine = create_engine(db_url)
    with engine.begin() as conn:
        _old_line(conn, "l1")
        conn.execute(text(
            "INSERT INTO model_versions (line_id, version, status, regimes, threshold, metrics, "
            "reasons, artifact, trained_window_ids, created_at) VALUES ('l1', 1, 'active', 1, "
            "1.0, '{}', '[]', :a, :ids, :t)"),
            {"a": b"", "ids": np.arange(1, 41, dtype="<i8").tobytes(), "t": utcnow()})
    migrate.upgrade(db_url)
    with engine.begin() as conn:
        new = conn.execute(text("INSERT INTO buffer_windows (line_id, \"values\", received_at) "
                                "VALUES ('l1', :v, :t) RETURNING id"),
                           {"v": b"\0" * 32, "t": utcnow()}).scalar_one()
    assert new > 40
    engine.dispose()


@pytest.fixture
def empty_pg_schema(pg_url: str) -> Iterator[str]:  # pg_url: skips (or fails in CI) without one
    with pg_schema("lifeline_empty") as url:
        yield url


def _upgrade(url: str) -> str:
    try:
        migrate.upgrade(url)
        return "ok"
    except Exception as exc:  # the test reports what any replica raised
        return f"{type(exc).__name__}: {exc}"


@pytest.mark.postgres
def test_replicas_starting_together_migrate_one_after_another(empty_pg_schema: str) -> None:
    """Every replica migrates on start; on an empty PostgreSQL, without the advisory lock in
    migrations/env.py, two of three crashed creating the same tables."""
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        results = pool.map(_upgrade, [empty_pg_schema] * 3)
    assert results == ["ok"] * 3
    head = ScriptDirectory.from_config(migrate.alembic_config(empty_pg_schema)).get_current_head()
    engine = create_engine(empty_pg_schema)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [
            head]
    engine.dispose()
