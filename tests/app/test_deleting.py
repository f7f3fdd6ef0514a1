"""What an operator deletes: buffered windows the next model must not learn, and whole lines."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select

from app import jobs, lines
from app.db import utcnow
from app.main import create_app
from app.tables import (
    AnomalyEvent,
    AuditEntry,
    BufferWindow,
    IngestBatch,
    ModelVersion,
    TrainingJob,
)
from models.synthetic import inject_fault, make_windows
from tests.app.conftest import CHANNELS, WINDOW, Api, settings_for, windows_json

SPAN = {"since": "2026-11-28T05:00:30Z", "until": "2026-11-28T05:01:00Z"}


def _line(api: Api, name: str, min_windows: int = 60) -> None:
    r = api.call("PUT", f"/v1/lines/{name}", json={"channels": CHANNELS, "window": WINDOW,
                                                  "min_windows": min_windows})
    assert r.status_code == 201, r.text


def _post(api: Api, name: str, body: dict) -> dict:
    r = api.call("POST", f"/v1/lines/{name}/windows", json=body)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def _rows(api: Api, table: type, line: str) -> int:
    with api.svc.sessions() as s:
        return s.scalar(select(func.count()).select_from(table).where(
            table.line_id == line)) or 0


def test_discarded_windows_leave_the_buffer_and_the_next_model_never_sees_them(
        api: Api) -> None:
    _line(api, "d")
    timed = windows_json(make_windows(120, 4, WINDOW, 0, seed=1))  # 05:00:00 + i s
    _post(api, "d", {"windows": timed})
    _post(api, "d", {"windows": [{"values": w["values"]} for w in timed[:40]]})  # no start
    url = "/v1/lines/d/buffer"

    assert api.call("DELETE", url, key=api.new_key("gateway"), params=SPAN).status_code == 403
    r = api.call("DELETE", url, params={"since": SPAN["until"], "until": SPAN["since"]})
    assert r.status_code == 422 and "before" in r.json()["error"]["message"], r.text
    r = api.call("DELETE", url, params={"since": "2026-11-28T05:00:30"})  # no zone
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "since", r.text
    assert api.call("DELETE", "/v1/lines/nope/buffer").status_code == 404

    r = api.call("DELETE", url, params={**SPAN, "reason": "valve test, not normal running"})
    assert r.status_code == 200, r.text
    assert r.json()["deleted"] == 30 and r.json()["buffer"]["windows"] == 130
    with api.svc.sessions() as s:
        starts = [t for t in s.scalars(select(BufferWindow.start)) if t is not None]
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "buffer.discard")).one()
    assert len(starts) == 90
    assert not [t for t in starts if SPAN["since"] <= t.isoformat().replace("+00:00", "Z")
                < SPAN["until"]]
    assert entry.details["deleted"] == 30 and entry.details["reason"].startswith("valve")

    # A window without a `start` is timed by its arrival.
    since = (utcnow() - timedelta(minutes=10)).isoformat()
    r = api.call("DELETE", url, params={"since": since})
    assert r.status_code == 200 and r.json()["deleted"] == 40, r.text

    api.tick()  # the first model trains on what is left, and only on that
    (job,) = api.call("GET", "/v1/lines/d/jobs").json()["jobs"]
    assert job["status"] == "succeeded", job
    assert job["metrics"]["train_windows"] == 90
    assert api.call("GET", "/v1/lines/d").json()["buffer"]["windows"] == 0


def test_discarding_while_a_job_trains_on_the_buffer_is_refused(api: Api) -> None:
    _line(api, "busy")
    _post(api, "busy", {"windows": windows_json(make_windows(80, 4, WINDOW, 0, seed=1))})
    queued = api.call("POST", "/v1/lines/busy/retrain").json()["job_id"]
    # Queued: the job reads the buffer when it starts, so a discard now is what it trains on.
    r = api.call("DELETE", "/v1/lines/busy/buffer", params=SPAN)
    assert r.status_code == 200 and r.json()["deleted"] == 30, r.text
    with api.svc.sessions() as s:  # another replica claims it
        assert jobs.claim(s, owner="other-host:1", lease_s=300) == [queued]
    r = api.call("DELETE", "/v1/lines/busy/buffer")
    assert r.status_code == 409, r.text
    assert r.json()["error"] == {**r.json()["error"], "code": "job_in_progress",
                                 "details": {"job_id": queued}}
    assert f"POST /v1/jobs/{queued}/cancel" in r.json()["error"]["message"]
    assert api.call("GET", "/v1/lines/busy").json()["buffer"]["windows"] == 50


def test_deleting_a_line_removes_all_it_holds_and_frees_its_name(api: Api) -> None:
    _line(api, "gone")
    _post(api, "gone", {"windows": windows_json(make_windows(100, 4, WINDOW, 0, seed=1))})
    api.tick()
    assert api.call("GET", "/v1/lines/gone").json()["state"] == "ready"
    fault = inject_fault(make_windows(5, 4, WINDOW, 0, seed=2), channel=2)
    assert any(r["anomaly"] for r in _post(api, "gone", {"windows": windows_json(fault)})[
        "results"])
    _post(api, "gone", {"batch_id": "b-1",
                        "windows": windows_json(make_windows(20, 4, WINDOW, 0, seed=3))})
    _line(api, "kept")
    _post(api, "kept", {"windows": windows_json(make_windows(10, 4, WINDOW, 0, seed=4))})
    tables = (BufferWindow, ModelVersion, TrainingJob, AnomalyEvent, IngestBatch)
    assert all(_rows(api, t, "gone") for t in tables)
    assert 'line="gone"' in api.client.get("/metrics").text

    assert api.call("DELETE", "/v1/lines/gone", key=api.new_key("viewer")).status_code == 403
    r = api.call("DELETE", "/v1/lines/gone")
    assert r.status_code == 204 and r.content == b"", r.text

    assert api.call("GET", "/v1/lines/gone").status_code == 404
    assert api.call("POST", "/v1/lines/gone/windows", json={"windows": windows_json(
        make_windows(1, 4, WINDOW, 0, seed=5))}).status_code == 404
    assert api.call("DELETE", "/v1/lines/gone").status_code == 404
    assert [t.__name__ for t in tables if _rows(api, t, "gone")] == []
    assert 'line="gone"' not in api.client.get("/metrics").text
    assert api.call("GET", "/v1/lines/kept").json()["buffer"]["windows"] == 10
    with api.svc.sessions() as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "line.delete")).one()
    assert entry.line_id == "gone" and entry.details["versions"] == 1
    assert entry.details["buffer_windows"] == 20 and entry.actor.endswith("bootstrap")

    r = api.call("PUT", "/v1/lines/gone", json={"channels": ["a", "b"], "window": 8})
    assert r.status_code == 201, r.text  # a new line under the old name starts afresh
    assert (r.json()["state"], r.json()["buffer"]["windows"]) == ("warming_up", 0)
    assert api.call("GET", "/v1/lines/gone/models").json()["models"] == []


def test_deleting_a_line_stops_the_job_training_on_it(db_url: str) -> None:
    settings = settings_for(db_url, job_lease_s=0.6)  # the lease renews every 0.2 s
    with TestClient(create_app(settings)) as client:
        api = Api(client, {})
        _line(api, "short-lived", min_windows=100)
        _post(api, "short-lived", {"windows": windows_json(
            make_windows(400, 4, WINDOW, 0, seed=1))})
        job = api.call("POST", "/v1/lines/short-lived/retrain").json()["job_id"]
        (fut,) = api.svc.scheduler.tick()  # a first model: five fits
        while not api.call("GET", f"/v1/jobs/{job}").json()["metrics"].get("progress"):
            assert not fut.done(), "the job ended before the line could be deleted"
            time.sleep(0.05)
        assert api.call("DELETE", "/v1/lines/short-lived").status_code == 204
        fut.result(timeout=120)
        progress = api.svc.scheduler.runner.compute.progress()
        assert progress is not None and progress["fit"] < 5, progress  # stopped, not finished
        assert api.call("GET", f"/v1/jobs/{job}").status_code == 404
        assert _rows(api, BufferWindow, "short-lived") == 0


@pytest.mark.parametrize("column", ["threshold", "artifact"])
def test_a_line_deleted_in_the_middle_of_a_scoring_request_is_a_404(api: Api, column: str
                                                                     ) -> None:
    """The request has read the line when an operator's delete commits, just before it reads
    the line's model (`threshold`) or, at a version's first use, the model's bytes: a 404
    saying the line is gone, not a 500 (an interleaving test_operation_sequences.py meets
    by chance)."""
    _line(api, "gone")
    _post(api, "gone", {"windows": windows_json(make_windows(60, 4, WINDOW, 0, seed=1))})
    api.tick()
    r = _deleted_before(api, lambda q: f"model_versions.{column}" in q, lambda: api.call(
        "POST", "/v1/lines/gone/windows", json={
            "learn": False, "windows": windows_json(make_windows(1, 4, WINDOW, 0, seed=2))}))
    assert (r.status_code, r.json()["error"]["code"]) == (404, "line_not_found"), r.text


def test_a_line_deleted_just_before_an_activation_locks_it_is_a_404_for_the_line(api: Api
                                                                                 ) -> None:
    """The activation has read the line when an operator's delete commits, just before it
    locks the line: the answer says the line is gone, not that its version is."""
    _line(api, "gone")
    _post(api, "gone", {"windows": windows_json(make_windows(60, 4, WINDOW, 0, seed=1))})
    api.tick()
    r = _deleted_before(api, lambda q: "BEGIN IMMEDIATE" in q or "FOR NO KEY UPDATE" in q,
                        lambda: api.call("POST", "/v1/lines/gone/models/1/activate"))
    assert (r.status_code, r.json()["error"]["code"]) == (404, "line_not_found"), r.text


def _deleted_before(api: Api, statement: Callable[[str], bool], act: Callable[[], Any]) -> Any:
    """What `act` answers when an operator's delete of line "gone" commits just before the
    first SQL statement `act` sends that `statement` picks."""
    deleted: list[str] = []

    def delete_first(_conn: object, _cursor: object, sql: str, *_: object) -> None:
        if not deleted and statement(sql):
            deleted.append(sql)
            with api.svc.sessions() as s:
                lines.delete_line(s, line_id="gone", actor="test")

    engine = api.svc.sessions.kw["bind"]
    event.listen(engine, "before_cursor_execute", delete_first)
    try:
        answer = act()
    finally:
        event.remove(engine, "before_cursor_execute", delete_first)
    assert deleted, "no statement picked: the delete never ran"
    return answer
