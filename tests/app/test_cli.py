"""`lifeline keys` against a real database."""

import getpass

import pytest
from sqlalchemy import event, func, select

from app import cli
from app.auth import authenticate, ensure_bootstrap_key
from app.db import make_engine, make_sessionmaker
from app.settings import get_settings
from app.tables import ApiKey, AuditEntry


def test_keys_create_list_revoke(db_url: str, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LIFELINE_DATABASE_URL", db_url)
    get_settings.cache_clear()
    try:
        assert cli.main(["keys", "create", "--role", "gateway", "--name", "gw-7"]) == 0
        key = capsys.readouterr().out.strip().splitlines()[-1]
        assert key.startswith("ll_") and len(key) > 30
        assert cli.main(["keys", "list"]) == 0
        listing = capsys.readouterr().out
        assert "gateway\tgw-7" in listing and key not in listing and "active" in listing
        assert cli.main(["keys", "revoke", "1"]) == 0
        assert cli.main(["keys", "list"]) == 0 and "revoked" in capsys.readouterr().out
        assert cli.main(["keys", "revoke", "1"]) == 1
        with make_sessionmaker(make_engine(db_url))() as s:  # who made and revoked it
            trail = [(e.actor, e.action, e.details) for e in s.scalars(
                select(AuditEntry).order_by(AuditEntry.id))]
        me = f"cli:{getpass.getuser()}"
        assert trail == [(me, "key.create", {"key_id": 1, "role": "gateway", "name": "gw-7"}),
                         (me, "key.revoke", {"key_id": 1})]
    finally:
        get_settings.cache_clear()


def test_a_gateway_key_limited_to_lines(db_url: str, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LIFELINE_DATABASE_URL", db_url)
    get_settings.cache_clear()
    try:
        assert cli.main(["keys", "create", "--role", "gateway", "--name", "gw-7",
                         "--line", "press-4", "--line", "press-3"]) == 0
        made, key = capsys.readouterr().out.strip().splitlines()
        assert "(gateway, gw-7, lines press-3,press-4)" in made
        assert cli.main(["keys", "create", "--role", "viewer", "--line", "press-3"]) == 2
        out = capsys.readouterr()
        assert out.out == "" and "only gateway keys" in out.err
        assert cli.main(["keys", "list"]) == 0
        assert capsys.readouterr().out.strip().endswith("active\tunused\tlines press-3,press-4")
        with make_sessionmaker(make_engine(db_url))() as s:
            assert authenticate(s, f"Bearer {key}", "gateway").lines == {"press-3", "press-4"}
            assert s.scalar(select(func.count()).select_from(ApiKey)) == 1
        assert cli.main(["keys", "list"]) == 0  # the key was used just now
        assert "\tactive\tused 20" in capsys.readouterr().out
    finally:
        get_settings.cache_clear()


def test_a_key_made_for_every_line_is_limited_later_and_lifted(
        db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Keys made before limits existed post to every line; limiting one keeps its gateway's
    key as it is."""
    monkeypatch.setenv("LIFELINE_DATABASE_URL", db_url)
    get_settings.cache_clear()
    try:
        assert cli.main(["keys", "create", "--role", "gateway", "--name", "gw-7"]) == 0
        key = capsys.readouterr().out.strip().splitlines()[-1]
        assert cli.main(["keys", "create", "--role", "viewer"]) == 0
        assert cli.main(["keys", "limit", "1", "--line", "press-3"]) == 0
        assert "key 1 may now post to lines press-3" in capsys.readouterr().out
        with make_sessionmaker(make_engine(db_url))() as s:
            assert authenticate(s, f"Bearer {key}", "gateway").lines == {"press-3"}
        assert cli.main(["keys", "limit", "2", "--line", "press-3"]) == 2  # a viewer's
        assert "only gateway keys" in capsys.readouterr().err
        assert cli.main(["keys", "limit", "9", "--line", "press-3"]) == 1
        assert cli.main(["keys", "limit", "1", "--every-line"]) == 0
        assert "key 1 may now post to every line" in capsys.readouterr().out
        with pytest.raises(SystemExit):  # lines or --every-line, not both
            cli.main(["keys", "limit", "1", "--line", "a", "--every-line"])
        with make_sessionmaker(make_engine(db_url))() as s:
            assert authenticate(s, f"Bearer {key}", "gateway").lines is None
            trail = [e.details for e in s.scalars(select(AuditEntry).where(
                AuditEntry.action == "key.limit").order_by(AuditEntry.id))]
        assert trail == [{"key_id": 1, "lines": ["press-3"]}, {"key_id": 1, "lines": None}]
    finally:
        get_settings.cache_clear()


def test_replicas_that_race_to_create_the_bootstrap_key_both_start(db_url: str) -> None:
    """Two replicas start on an empty database with the same LIFELINE_BOOTSTRAP_OPERATOR_KEY:
    both find no key, and the second insert meets the first's unique key hash. The race is
    forced: the other replica commits the key right after this one has looked."""
    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)

    def other_replica_commits_first(*_: object) -> None:
        with sessions() as other:
            ensure_bootstrap_key(other, "op-secret")

    event.listen(engine, "after_cursor_execute", other_replica_commits_first, once=True)
    with sessions() as s:
        ensure_bootstrap_key(s, "op-secret")  # must not raise
        assert [k.role for k in s.scalars(select(ApiKey))] == ["operator"]
        assert authenticate(s, "Bearer op-secret", "operator").role == "operator"
    engine.dispose()


def test_backup_on_postgresql_says_what_to_run_instead(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LIFELINE_DATABASE_URL", "postgresql+psycopg://lifeline@db.plant/lifeline")
    get_settings.cache_clear()
    try:
        assert cli.main(["backup", "copy.db"]) == 2
    finally:
        get_settings.cache_clear()
    assert "pg_dump --exclude-table-data=buffer_windows" in capsys.readouterr().err
