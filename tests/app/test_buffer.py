"""The fresh buffer's reservoir keeps a uniform sample of everything offered, whether windows
arrive one per request (victims found by their place in the index) or in batches (one
shuffle)."""

from __future__ import annotations

import logging
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select, text

from app import buffer, cli
from app.db import make_engine, make_sessionmaker
from app.main import create_app
from app.settings import get_settings
from app.tables import AuditEntry, BufferWindow, Line
from models.synthetic import make_windows
from tests.app.conftest import (
    CHANNELS,
    WINDOW,
    Api,
    line_with_model,
    settings_for,
    windows_json,
)

LIMIT, OFFERED, RUNS = 10, 100, 24


@pytest.mark.parametrize("batch", [1, 20])
def test_the_reservoir_keeps_each_offered_window_equally_likely(db_url: str, batch: int
                                                                ) -> None:
    sessions = make_sessionmaker(make_engine(db_url))
    rng = np.random.default_rng(0)
    kept_at = np.zeros(OFFERED, int)  # how often the i-th window offered was kept
    with sessions() as s:
        line = Line(id="r", channels=["a"], window=4, retrain_interval_s=60, min_windows=20,
                    promotion="auto", target_false_alarm_rate=0.01, buffer_limit=LIMIT,
                    active_version=None, last_trained_at=None)
        s.add(line)
        s.commit()
        for _ in range(RUNS):
            s.execute(delete(BufferWindow))
            line.buffer_seen = line.buffer_dropped = line.buffer_windows = 0
            for i in range(0, OFFERED, batch):
                x = np.arange(i, i + batch, dtype=np.float32)[:, None, None].repeat(4, 1)
                buffer.append(s, line, x, [None] * batch, rng)
                s.commit()
            _, windows = buffer.snapshot(s, line)
            assert windows.shape == (LIMIT, 4, 1)
            kept_at[windows[:, 0, 0].astype(int)] += 1
    assert line.buffer_dropped == OFFERED - LIMIT
    # Each tenth of the arrivals: 24 runs x 10 kept x 1/10 = 24 expected, sd about 4.6.
    per_tenth = kept_at.reshape(10, -1).sum(axis=1)
    assert (abs(per_tenth - RUNS) <= 14).all(), per_tenth


def test_concurrent_gateways_neither_overfill_the_buffer_nor_lose_its_counts(db_url: str
                                                                               ) -> None:
    """Eight gateways post one window at a time to one line at once. Each request reads the
    line's counters and the buffer's size and writes them back under the line's lock; SQLite
    ignores FOR UPDATE, and before app/db.py's write lock it lost most counts (eight threads
    posting 50 windows each to a line bounded at 60: 74 of 340 dropped windows counted, 63
    windows kept)."""
    gateways, posts, limit = 8, 25, 60
    with TestClient(create_app(settings_for(db_url))) as client:
        api = Api(client, {})
        r = api.call("PUT", "/v1/lines/r", json={"channels": ["a", "b"], "window": 4,
                                                 "min_windows": limit, "buffer_limit": limit})
        assert r.status_code == 201, r.text
        body = {"windows": [{"values": [[1.0, 2.0]] * 4}]}

        def gateway(_: int) -> list[int]:
            return [api.call("POST", "/v1/lines/r/windows", json=body).status_code
                    for _ in range(posts)]

        with ThreadPoolExecutor(gateways) as pool:
            codes = [c for cs in pool.map(gateway, range(gateways)) for c in cs]
        assert codes == [200] * gateways * posts
        held = api.call("GET", "/v1/lines/r").json()["buffer"]
    assert held["windows"] == limit
    assert held["dropped"] == gateways * posts - limit


def test_a_lowered_buffer_limit_frees_the_space_at_once(db_url: str) -> None:
    """An operator lowers a line's bound to free disk: the buffer shrinks to it now, not at the
    next model's activation, and keeps its bound as windows go on arriving."""
    with TestClient(create_app(settings_for(db_url))) as client:
        api = Api(client, {})
        line = {"channels": ["a", "b"], "window": 4, "min_windows": 40}
        assert api.call("PUT", "/v1/lines/r", json=line | {"buffer_limit": 100}).status_code == 201
        x = np.arange(100, dtype=np.float32)[:, None, None].repeat(4, 1).repeat(2, 2)
        body = {"windows": [{"values": w.tolist()} for w in x]}
        assert api.call("POST", "/v1/lines/r/windows", json=body).status_code == 200
        r = api.call("PUT", "/v1/lines/r", json=line | {"buffer_limit": 40})
        assert r.status_code == 200, r.text
        assert r.json()["buffer"] | {"oldest_at": None} == {
            "windows": 40, "dropped": 60, "oldest_at": None}
        more = {"windows": [{"values": (w + 100).tolist()} for w in x]}
        assert api.call("POST", "/v1/lines/r/windows", json=more).status_code == 200
        assert api.call("GET", "/v1/lines/r").json()["buffer"]["windows"] == 40
        with api.svc.sessions() as s:
            _, kept = buffer.snapshot(s, s.get_one(Line, "r"))
            update = s.scalars(select(AuditEntry).where(
                AuditEntry.action == "line.update")).one()
    assert len(set(kept[:, 0, 0].tolist())) == 40  # 40 distinct windows
    assert update.details["buffer_evicted"] == 60


def _sizes(api: Api, line: str) -> tuple[int, int]:
    """(the size a line reports, the rows its buffer holds)."""
    reported = api.call("GET", f"/v1/lines/{line}").json()["buffer"]["windows"]
    with api.svc.sessions() as s:
        rows = s.scalar(select(func.count()).where(BufferWindow.line_id == line))
    return reported, rows


def test_the_buffer_size_a_line_keeps_matches_its_rows_through_every_change(db_url: str
                                                                           ) -> None:
    """The size is kept on the line row, not counted: each change to the buffer (reservoir,
    discard, a lowered limit, activation, rollback) must keep it exact."""
    with TestClient(create_app(settings_for(db_url))) as client:
        api = Api(client, {})
        cfg = {"channels": CHANNELS, "window": WINDOW, "min_windows": 60, "buffer_limit": 150}
        assert api.call("PUT", "/v1/lines/k", json=cfg).status_code == 201

        def post(n: int, seed: int, start_s: int = 0) -> None:
            body = {"windows": windows_json(make_windows(n, 4, WINDOW, 0, seed=seed), start_s)}
            assert api.call("POST", "/v1/lines/k/windows", json=body).status_code == 200

        seen = []
        post(120, seed=1)
        seen.append(_sizes(api, "k"))  # (120, 120)
        post(100, seed=2, start_s=600)  # the reservoir replaces: still its bound
        seen.append(_sizes(api, "k"))
        r = api.call("DELETE", "/v1/lines/k/buffer", params={"until": "2026-11-28T05:01:00Z"})
        assert r.status_code == 200 and r.json()["deleted"] > 0, r.text
        seen.append(_sizes(api, "k"))
        assert api.call("PUT", "/v1/lines/k", json=cfg | {"buffer_limit": 80}).status_code == 200
        seen.append(_sizes(api, "k"))  # (80, 80)
        api.tick()  # the first model trains on the buffer and, active, deletes it
        seen.append(_sizes(api, "k"))  # (0, 0)
        post(70, seed=3)
        api.call("POST", "/v1/lines/k/retrain")
        api.tick()
        post(10, seed=4)
        seen.append(_sizes(api, "k"))  # version 2 deleted what trained it; 10 new
        versions = [v["version"] for v in api.call("GET", "/v1/lines/k/models").json()["models"]]
        assert api.call("POST", "/v1/lines/k/models/1/activate").status_code == 200
        seen.append(_sizes(api, "k"))
    assert sorted(versions) == [1, 2]
    assert all(reported == rows for reported, rows in seen), seen
    assert [rows for _, rows in seen] == [120, 150, seen[2][1], 80, 0, 10, 10], seen


def test_a_rollback_deletes_no_window_buffered_since(db_url: str) -> None:
    """Activating a version deletes the windows that trained it, by id. SQLite gave a new row
    the largest id in the table plus one, so once a training emptied the buffer, new windows
    took the ids of windows long deleted, and rolling back to the version those trained
    deleted the fresh windows with them: buffer ids are never reused (migration 0008)."""
    with TestClient(create_app(settings_for(db_url, train_max_epochs=2))) as client:
        api = Api(client, {})
        cfg = {"channels": CHANNELS, "window": WINDOW, "min_windows": 60}
        assert api.call("PUT", "/v1/lines/k", json=cfg).status_code == 201

        def post(n: int, seed: int) -> None:
            body = {"windows": windows_json(make_windows(n, 4, WINDOW, 0, seed=seed))}
            assert api.call("POST", "/v1/lines/k/windows", json=body).status_code == 200

        post(80, seed=1)
        api.tick()  # version 1 trains on all 80 and deletes them
        post(80, seed=2)
        assert api.call("POST", "/v1/lines/k/retrain").status_code == 202
        api.tick()  # version 2 likewise
        assert _sizes(api, "k") == (0, 0)
        post(30, seed=3)  # fresh windows no model trained on
        assert api.call("POST", "/v1/lines/k/models/1/activate").status_code == 200
        assert api.call("GET", "/v1/lines/k").json()["active_model"]["version"] == 1
        assert _sizes(api, "k") == (30, 30)


def _on_disk(db_file: Path, windows: np.ndarray) -> int:
    """How many of these windows' stored bytes the database's files hold (file, WAL)."""
    data = b"".join(p.read_bytes() for p in db_file.parent.glob(db_file.name + "*"))
    return sum(buffer.encode(w) in data for w in windows)


def test_windows_a_model_trained_are_gone_from_the_disk_not_only_the_table(tmp_path: Path
                                                                          ) -> None:
    """The retention guarantee at the storage level, on the embedded SQLite: a deleted row
    stays readable in the file's free pages, and its page as first written stays in the
    write-ahead log, unless the database zeroes deleted content and the log is emptied."""
    db_file = tmp_path / "lifeline.db"
    with TestClient(create_app(settings_for(f"sqlite:///{db_file}", train_max_epochs=2))
                    ) as client:
        api = Api(client, {})
        cfg = {"channels": CHANNELS, "window": WINDOW, "min_windows": 100}
        assert api.call("PUT", "/v1/lines/k", json=cfg).status_code == 201
        x = make_windows(120, 4, WINDOW, 0, seed=1)
        assert api.call("POST", "/v1/lines/k/windows",
                        json={"windows": windows_json(x)}).status_code == 200
        assert _on_disk(db_file, x) == 120  # the test sees raw windows where they are
        with sqlite3.connect(db_file) as c:  # hours later: the log was copied into the file
            c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        api.tick()  # the first model trains on them and, active, deletes them
        assert _sizes(api, "k") == (0, 0)
        assert _on_disk(db_file, x) == 0
        with api.svc.sessions() as s:  # set, not left to the build (Debian's is on, not all)
            assert s.scalar(text("PRAGMA secure_delete")) == 1


def test_a_backup_holds_no_raw_window_and_restores_a_serving_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`lifeline backup` while the service runs: the copy's files hold none of the buffered
    windows' bytes, and the service started on it serves the line's model with an empty
    buffer."""
    db_file, copy = tmp_path / "lifeline.db", tmp_path / "backup" / "copy.db"
    copy.parent.mkdir()
    x = make_windows(120, 4, WINDOW, 0, seed=2)
    with TestClient(create_app(settings_for(f"sqlite:///{db_file}", train_max_epochs=2))
                    ) as client:
        api = Api(client, {})
        line_with_model(api, "k")
        assert api.call("POST", "/v1/lines/k/windows",
                        json={"windows": windows_json(x)}).status_code == 200
        buffered = _sizes(api, "k")[0]
        assert buffered >= 110 and _on_disk(db_file, x) >= 110  # (a few may be flagged)
        monkeypatch.setenv("LIFELINE_DATABASE_URL", f"sqlite:///{db_file}")
        get_settings.cache_clear()
        try:
            assert cli.main(["backup", str(copy)]) == 0
            assert cli.main(["backup", str(copy)]) == 2  # never over an existing file
        finally:
            get_settings.cache_clear()
        assert f"without its {buffered} buffered windows" in capsys.readouterr().out
        scored = api.call("POST", "/v1/lines/k/windows", json={
            "windows": windows_json(x[:3]), "learn": False}).json()["results"]
    assert _on_disk(copy, x) == 0 and sorted(p.name for p in copy.parent.iterdir()) == [
        "copy.db"]  # no journal or log left beside it
    with TestClient(create_app(settings_for(f"sqlite:///{copy}"))) as client:
        api = Api(client, {})
        line = api.call("GET", "/v1/lines/k").json()
        assert (line["state"], line["active_model"]["version"]) == ("ready", 1)
        assert _sizes(api, "k") == (0, 0)
        again = api.call("POST", "/v1/lines/k/windows", json={
            "windows": windows_json(x[:3]), "learn": False}).json()["results"]
        assert [r["score"] for r in again] == [r["score"] for r in scored]


def test_a_start_corrects_a_buffer_counter_its_rows_disagree_with(
        db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """A PostgreSQL restore from `pg_dump --exclude-table-data=buffer_windows` brings the lines
    back with their counters and no rows: the next start recounts, so the line gathers
    windows anew instead of a retrain being due on windows that are not there."""
    settings = settings_for(db_url)
    cfg = {"channels": CHANNELS, "window": WINDOW, "min_windows": 500}
    with TestClient(create_app(settings)) as client:
        api = Api(client, {})
        for line in ("kept", "restored"):
            assert api.call("PUT", f"/v1/lines/{line}", json=cfg).status_code == 201
            assert api.call("POST", f"/v1/lines/{line}/windows", json={
                "windows": windows_json(make_windows(40, 4, WINDOW, 0, seed=3))}).status_code == 200
        with api.svc.sessions() as s:
            s.execute(delete(BufferWindow).where(BufferWindow.line_id == "restored"))
            s.commit()
        assert _sizes(api, "restored") == (40, 0)
    with caplog.at_level(logging.WARNING, "lifeline"), TestClient(create_app(settings)) as client:
        api = Api(client, {})
        assert _sizes(api, "restored") == (0, 0) and _sizes(api, "kept") == (40, 40)
        assert api.call("POST", "/v1/lines/restored/windows", json={
            "windows": windows_json(make_windows(5, 4, WINDOW, 0, seed=4))}).status_code == 200
        assert _sizes(api, "restored") == (5, 5)
    assert [r.getMessage() for r in caplog.records if r.name == "lifeline"] == [
        "line restored: its buffer counter said 40 windows, its rows are 0 (a restore without "
        "them?): corrected"]
