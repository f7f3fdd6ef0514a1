"""Every endpoint's errors as the contract states them (status, code, message)."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from app import auth, batches
from app.auth import create_key, limit_key
from app.db import make_engine, make_sessionmaker, utcnow
from app.logs import EveryFewSeconds
from app.main import create_app
from app.scheduler import enqueue_due
from app.tables import ApiKey, AuditEntry, BufferWindow, IngestBatch, Line, TrainingJob
from models.synthetic import make_windows
from tests.app.conftest import CHANNELS, WINDOW, Api, settings_for, windows_json, writes_of

LINE = "line-a"


@pytest.fixture
def line(api: Api) -> str:
    r = api.call("PUT", f"/v1/lines/{LINE}", json={"channels": CHANNELS, "window": WINDOW,
                                                  "min_windows": 50})
    assert r.status_code == 201, r.text
    return LINE


def err(r, status: int, code: str) -> dict:  # type: ignore[no-untyped-def]
    assert r.status_code == status, r.text
    body = r.json()["error"]
    assert body["code"] == code and body["message"], body
    return body


def test_health_and_readiness_need_no_key(api: Api) -> None:
    assert api.call("GET", "/healthz", key=None).json() == {"status": "ok"}
    # scheduler disabled in tests: ready means the database answers
    assert api.call("GET", "/readyz", key=None).status_code == 200
    assert api.call("GET", "/metrics", key=None).status_code == 200


def test_keys_and_roles(api: Api, line: str) -> None:
    err(api.call("GET", "/v1/lines", key=None), 401, "missing_api_key")
    err(api.call("GET", "/v1/lines", key="nope"), 401, "invalid_api_key")
    gw, viewer = api.new_key("gateway"), api.new_key("viewer")
    body = {"windows": windows_json(make_windows(1, 4, WINDOW))}
    assert api.call("POST", f"/v1/lines/{line}/windows", key=gw, json=body).status_code == 200
    err(api.call("GET", "/v1/lines", key=gw), 403, "forbidden")
    err(api.call("POST", f"/v1/lines/{line}/windows", key=viewer, json=body), 403, "forbidden")
    assert api.call("GET", f"/v1/lines/{line}", key=viewer).status_code == 200
    err(api.call("PUT", f"/v1/lines/{line}", key=viewer, json={"channels": ["a"], "window": 8}),
        403, "forbidden")
    err(api.call("POST", f"/v1/lines/{line}/retrain", key=gw), 403, "forbidden")


def test_a_gateway_key_limited_to_lines_posts_to_those_alone(api: Api, line: str) -> None:
    """Nothing a limited key posts elsewhere is accepted, and its 403 does not tell whether
    the line exists; an unlimited key and an operator's post anywhere."""
    other = "line-b"
    assert api.call("PUT", f"/v1/lines/{other}", json={"channels": CHANNELS, "window": WINDOW,
                                                       "min_windows": 50}).status_code == 201
    gw = api.new_key("gateway", lines=[line, "line-later"])
    body = {"windows": windows_json(make_windows(3, 4, WINDOW))}
    assert api.call("POST", f"/v1/lines/{line}/windows", key=gw, json=body).status_code == 200
    for _ in range(2):  # the second from the per-process key cache, which keeps the limit
        e = err(api.call("POST", f"/v1/lines/{other}/windows", key=gw, json=body), 403,
                "line_not_allowed")
        assert e["details"] == {"line_id": other, "lines": [line, "line-later"]}
        assert "line-a, line-later only" in e["message"]
    err(api.call("POST", "/v1/lines/nowhere/windows", key=gw, json=body), 403, "line_not_allowed")
    npy = {"headers": {"Content-Type": "application/x-npy"}}
    err(api.call("POST", f"/v1/lines/{other}/windows", key=gw, content=b"", **npy), 403,
        "line_not_allowed")
    buffered = {n: api.call("GET", f"/v1/lines/{n}").json()["buffer"]["windows"]
                for n in (line, other)}
    assert buffered == {line: 3, other: 0}
    for key in (api.new_key("gateway"), None):  # None: the operator's
        r = api.call("POST", f"/v1/lines/{other}/windows", json=body,
                     **({"key": key} if key else {}))
        assert r.status_code == 200, r.text
    with api.svc.sessions() as s:
        made = [d for d in s.scalars(select(AuditEntry.details).where(
            AuditEntry.action == "key.create").order_by(AuditEntry.id)) if d["role"] == "gateway"]
    assert made[0]["lines"] == [line, "line-later"] and "lines" not in made[1]


def test_a_key_in_use_limited_is_refused_at_once_here_and_logged(
        api: Api, line: str, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "_refused", EveryFewSeconds(auth.log, 10.0))  # none said lately
    gw = api.new_key("gateway")
    body = {"windows": windows_json(make_windows(1, 4, WINDOW))}
    assert api.call("POST", "/v1/lines/line-b/windows", key=gw, json=body).status_code == 404
    with api.svc.sessions() as s:  # as `lifeline keys limit` does; the key is cached by now
        assert limit_key(s, 2, lines=[line], actor="test")
        s.commit()
    with caplog.at_level(logging.WARNING, "app.auth"):
        err(api.call("POST", "/v1/lines/line-b/windows", key=gw, json=body), 403,
            "line_not_allowed")
    assert api.call("POST", f"/v1/lines/{line}/windows", key=gw, json=body).status_code == 200
    assert [r.getMessage() for r in caplog.records if r.name == "app.auth"] == [
        "key 2 (test-gateway) refused: it may not post to line 'line-b', only to line-a"]


def test_a_key_says_when_it_was_last_used_written_every_few_minutes_at_most(
        api: Api, line: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "KEY_CACHE_S", 0.0)  # every request looks its key up
    viewer = api.new_key("viewer")
    api.new_key("gateway")  # made, never used
    read = lambda: api.call("GET", f"/v1/lines/{line}", key=viewer)  # noqa: E731

    def used() -> dict[str, datetime | None]:
        with api.svc.sessions() as s:
            return {name: at for name, at in s.execute(select(ApiKey.name, ApiKey.last_used_at))}

    assert [q for q in writes_of(api, read) if "api_keys" in q] != []  # its first use
    first = used()["test-viewer"]
    assert first is not None and utcnow() - first < timedelta(minutes=1)
    assert writes_of(api, read) == []  # a read writes nothing while the stamp is fresh
    monkeypatch.setattr(auth, "KEY_STAMP_EVERY", timedelta(0))
    assert [q for q in writes_of(api, read) if "api_keys" in q] != []
    assert used()["test-viewer"] > first  # type: ignore[operator]
    assert used()["test-gateway"] is None


def test_only_gateway_keys_are_limited_to_lines(api: Api) -> None:
    with api.svc.sessions() as s:
        for role, lines, says in (("viewer", ["a"], "only gateway keys"),
                                  ("operator", ["a"], "only gateway keys"),
                                  ("gateway", [], "at least one line"),
                                  ("gateway", ["ok", "bad id!"], "'bad id!'")):
            with pytest.raises(ValueError, match=says):
                create_key(s, role=role, name="k", actor="test", lines=lines)


def test_line_validation_and_unknown_line(api: Api, line: str) -> None:
    e = err(api.call("PUT", "/v1/lines/bad id!", json={"channels": ["a"], "window": 8}),
            422, "invalid_request")
    assert "line_id" in e["message"]
    e = err(api.call("PUT", "/v1/lines/x", json={"channels": ["a", "a"], "window": 8}),
            422, "invalid_request")
    assert "repeated" in e["message"]
    err(api.call("PUT", "/v1/lines/x", json={"window": 8}), 422, "invalid_request")
    # a buffer bounded below min_windows could never train the line, the default bound too
    e = err(api.call("PUT", "/v1/lines/x", json={"channels": ["a"], "window": 8,
                                                  "min_windows": 100, "buffer_limit": 50}),
            422, "invalid_request")
    assert e["details"][0]["field"] == "min_windows" and "buffer_limit 50" in e["message"]
    bound = api.svc.settings.buffer_limit
    too_many = {"channels": ["a"], "window": 8, "min_windows": bound + 1}
    e = err(api.call("PUT", "/v1/lines/x", json=too_many), 422, "invalid_request")
    assert f"buffer_limit {bound}" in e["message"]
    err(api.call("GET", "/v1/lines/x"), 404, "line_not_found")  # nothing of either was kept
    err(api.call("GET", "/v1/lines/nope"), 404, "line_not_found")
    err(api.call("POST", "/v1/lines/nope/windows",
                 json={"windows": windows_json(make_windows(1, 4, WINDOW))}), 404, "line_not_found")
    err(api.call("GET", "/v1/jobs/nope"), 404, "job_not_found")
    assert api.call("GET", f"/v1/lines/{line}/models").json() == {"models": []}
    err(api.call("POST", f"/v1/lines/{line}/models/9/activate"), 404, "model_version_not_found")
    r = api.call("PATCH", f"/v1/lines/{line}")
    assert r.status_code == 405 and set(r.headers["allow"].split(", ")) == {"GET", "PUT", "DELETE"}
    assert err(r, 405, "method_not_allowed")["message"].startswith("PATCH is not allowed here")
    for beyond in (0, 2**31, 2**88):  # not a 500 from the driver (found by schemathesis)
        err(api.call("POST", f"/v1/lines/{line}/models/{beyond}/activate"), 422,
            "invalid_request")
    lines = api.call("GET", "/v1/lines").json()["lines"]
    assert [x["line_id"] for x in lines] == [line]


def test_a_lines_buffer_is_bounded_in_megabytes_whatever_its_shape(api: Api) -> None:
    """256 MB by default (LIFELINE_BUFFER_MAX_MB): 512 channels x 64 steps hold 2,048 windows,
    the default bound shrinks to that, a bound above it is refused saying what fits, and a line
    whose windows are too large to buffer min_windows of them is refused."""
    wide = {"channels": [f"s{i}" for i in range(512)], "window": 64}
    r = api.call("PUT", "/v1/lines/wide", json=wide)
    assert r.status_code == 201, r.text
    assert r.json()["buffer_limit"] == 2048 < api.svc.settings.buffer_limit
    e = err(api.call("PUT", "/v1/lines/wide", json={**wide, "buffer_limit": 5000}), 422,
            "invalid_request")
    assert e["details"][0]["field"] == "buffer_limit"
    assert "625 MB" in e["message"] and "2048 such windows" in e["message"]
    assert "LIFELINE_BUFFER_MAX_MB" in e["message"]
    assert api.call("GET", "/v1/lines/wide").json()["buffer_limit"] == 2048  # kept as it was
    e = err(api.call("PUT", "/v1/lines/long", json={**wide, "window": 4096}), 422,
            "invalid_request")
    assert e["details"][0]["field"] == "min_windows" and "buffer_limit 32" in e["message"]
    narrow = api.call("PUT", "/v1/lines/narrow", json={"channels": ["a", "b"], "window": 64})
    assert narrow.json()["buffer_limit"] == api.svc.settings.buffer_limit


def test_window_shape_errors_name_the_window_and_row(api: Api, line: str) -> None:
    good = windows_json(make_windows(3, 4, WINDOW))
    short = [dict(good[0]), dict(good[1], values=good[1]["values"][:5])]
    e = err(api.call("POST", f"/v1/lines/{line}/windows", json={"windows": short}),
            422, "invalid_window_shape")
    assert e["details"]["window"] == 1 and "windows[1] has 5 rows;" in e["message"]
    one = [dict(good[0], values=good[0]["values"][:1])]
    e = err(api.call("POST", f"/v1/lines/{line}/windows", json={"windows": one}),
            422, "invalid_window_shape")
    assert f"windows[0] has 1 row; line {line!r} needs {WINDOW} rows of 4 values" in e["message"]
    narrow = [dict(good[0], values=[r[:3] for r in good[0]["values"]])]
    e = err(api.call("POST", f"/v1/lines/{line}/windows", json={"windows": narrow}),
            422, "invalid_window_shape")
    assert e["details"] == {"window": 0, "row": 0, "values": 3, "expected": 4}
    rows = good[0]["values"]  # ragged rows whose lengths add up to a full window
    ragged = [dict(good[0], values=[rows[0] + [0.0], rows[1][:3], *rows[2:]])]
    e = err(api.call("POST", f"/v1/lines/{line}/windows", json={"windows": ragged}),
            422, "invalid_window_shape")
    assert e["details"] == {"window": 0, "row": 0, "values": 5, "expected": 4}
    bad = [dict(good[0], values=[["x"] * 4] * WINDOW)]
    e = err(api.call("POST", f"/v1/lines/{line}/windows", json={"windows": bad}),
            422, "invalid_request")
    assert e["details"][0]["field"].startswith("windows[0].values[0][0]")
    with api.svc.sessions() as s:  # nothing of a rejected batch was kept
        assert s.scalars(select(BufferWindow)).first() is None


def test_duplicate_batch_is_answered_again_and_counted_once(api: Api, line: str) -> None:
    body = {"batch_id": "gw-7-000123", "windows": windows_json(make_windows(5, 4, WINDOW))}
    first = api.call("POST", f"/v1/lines/{line}/windows", json=body).json()
    again = api.call("POST", f"/v1/lines/{line}/windows", json=body).json()
    assert first == again
    assert api.call("GET", f"/v1/lines/{line}").json()["buffer"]["windows"] == 5
    with api.svc.sessions() as s:
        assert len(s.scalars(select(IngestBatch)).all()) == 1


def test_a_batch_is_remembered_for_a_day_then_forgotten(api: Api, line: str) -> None:
    """Every batch with an id kept its answer for ever (86,400 a day for a gateway posting
    each second). The scheduler forgets those older than LIFELINE_BATCH_MEMORY_S (a day): a
    retry within it is answered again, one after it is a new batch."""
    def post(batch_id: str) -> dict:
        body = {"batch_id": batch_id, "windows": windows_json(make_windows(5, 4, WINDOW))}
        return api.call("POST", f"/v1/lines/{line}/windows", json=body).json()  # type: ignore

    old, recent = post("gw-old"), post("gw-recent")
    with api.svc.sessions() as s:
        s.execute(update(IngestBatch).where(IngestBatch.batch_id == "gw-old").values(
            created_at=utcnow() - timedelta(days=1, seconds=1)))
        s.commit()
    api.tick()
    with api.svc.sessions() as s:
        assert list(s.scalars(select(IngestBatch.batch_id))) == ["gw-recent"]
    assert post("gw-recent") == recent
    assert post("gw-old") == old  # scored again alike, and this time buffered again
    assert api.call("GET", f"/v1/lines/{line}").json()["buffer"]["windows"] == 15


def test_retrain_conflicts(api: Api, line: str) -> None:
    json_type = {"Content-Type": "application/json"}
    e = err(api.call("POST", f"/v1/lines/{line}/retrain", content=b'[{"a', headers=json_type),
            422, "invalid_request")
    assert e["message"].startswith("body: not valid JSON at character 2"), e
    e = err(api.call("POST", f"/v1/lines/{line}/retrain", content=b"\xff\xfe[",
                     headers=json_type), 400, "invalid_json")  # found by schemathesis
    assert "UTF-8" in e["message"], e
    e = err(api.call("POST", f"/v1/lines/{line}/retrain"), 409, "not_enough_windows")
    assert e["details"] == {"windows": 0, "needed": 50}
    api.call("POST", f"/v1/lines/{line}/windows",
             json={"windows": windows_json(make_windows(60, 4, WINDOW))})
    r = api.call("POST", f"/v1/lines/{line}/retrain", json={"reason": "test"})
    assert r.status_code == 202 and r.json()["status"] == "queued"
    e = err(api.call("POST", f"/v1/lines/{line}/retrain"), 409, "job_in_progress")
    assert e["details"]["job_id"] == r.json()["job_id"]
    jobs = api.call("GET", f"/v1/lines/{line}/jobs").json()["jobs"]
    assert [j["job_id"] for j in jobs] == [r.json()["job_id"]] and jobs[0]["trigger"] == "operator"
    for bad in ("0", "-1", "501"):  # a 422 naming the parameter, not the database's error
        e = err(api.call("GET", f"/v1/lines/{line}/jobs?limit={bad}"), 422, "invalid_request")
        assert "limit" in e["message"]
    with api.svc.sessions() as s:
        actions = [a.action for a in s.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert actions == ["key.create", "line.create", "line.retrain"]  # the bootstrap key first


def test_retrains_posted_at_once_queue_one_job_and_name_it_to_the_others(
        api: Api, line: str) -> None:
    """Eight operators' consoles (or scripts) ask at the same moment, the scheduler beside
    them: one job is queued, every other answer is a 409 naming it."""
    api.call("POST", f"/v1/lines/{line}/windows",
             json={"windows": windows_json(make_windows(60, 4, WINDOW))})
    start = threading.Barrier(9)

    def ask(_: int) -> tuple[int, str]:
        start.wait()
        r = api.call("POST", f"/v1/lines/{line}/retrain")
        return r.status_code, r.json().get("job_id") or r.json()["error"]["details"]["job_id"]

    def schedule() -> list[str]:
        start.wait()
        with api.svc.sessions() as s:
            return enqueue_due(s)

    with ThreadPoolExecutor(9) as pool:
        scheduled = pool.submit(schedule)
        answers = list(pool.map(ask, range(8)))
    queued = [job for code, job in answers if code == 202] + scheduled.result()
    assert len(queued) == 1, answers
    assert answers.count((202, queued[0])) == (0 if scheduled.result() else 1)
    assert {job for _, job in answers} == set(queued), answers
    with api.svc.sessions() as s:
        assert s.scalar(select(func.count()).select_from(TrainingJob)) == 1


def test_a_line_put_from_several_places_at_once_is_created_once(api: Api) -> None:
    """Six PUTs of one new line at the same moment: one creates it (201), the others update
    it (200), none fails (on PostgreSQL four of six were 500s)."""
    def put(line: str, start: threading.Barrier) -> int:
        start.wait()
        return api.call("PUT", f"/v1/lines/{line}", json={
            "channels": CHANNELS, "window": WINDOW}).status_code

    for k in range(4):
        start = threading.Barrier(6)
        with ThreadPoolExecutor(6) as pool:
            codes = [pool.submit(put, f"new{k}", start) for _ in range(6)]
            assert sorted(c.result() for c in codes) == [200] * 5 + [201]
    with api.svc.sessions() as s:
        created = s.scalars(select(AuditEntry.line_id).where(AuditEntry.action == "line.create"))
        assert sorted(created) == [f"new{k}" for k in range(4)]


def test_shape_of_a_line_with_data_is_locked(api: Api, line: str) -> None:
    api.call("POST", f"/v1/lines/{line}/windows",
             json={"windows": windows_json(make_windows(2, 4, WINDOW))})
    err(api.call("PUT", f"/v1/lines/{line}", json={"channels": CHANNELS[:3], "window": WINDOW}),
        409, "line_shape_locked")
    r = api.call("PUT", f"/v1/lines/{line}", json={"channels": CHANNELS, "window": WINDOW,
                                                  "retrain_interval_s": 3600})
    assert r.status_code == 200 and r.json()["retrain_interval_s"] == 3600


def test_body_too_large(db_url: str) -> None:
    with TestClient(create_app(settings_for(db_url, max_body_bytes=4096))) as client:
        small = Api(client, {})
        small.call("PUT", f"/v1/lines/{LINE}", json={"channels": CHANNELS, "window": WINDOW})
        body = {"windows": windows_json(make_windows(20, 4, WINDOW))}
        err(small.call("POST", f"/v1/lines/{LINE}/windows", json=body), 413, "body_too_large")


def test_missing_values(api: Api, line: str) -> None:
    x = make_windows(2, 4, WINDOW)
    x[0, :, :3] = float("nan")  # 75 % missing
    x[1, 3, 1] = float("nan")
    r = api.call("POST", f"/v1/lines/{line}/windows", json={"windows": windows_json(x)})
    assert r.status_code == 200, r.text
    # warming up: the sparse window is not buffered (it would train the first model), the
    # other one is, its NaN kept as missing
    assert [res["status"] for res in r.json()["results"]] == ["insufficient_data", "warming_up"]
    with api.svc.sessions() as s:
        kept = [np.frombuffer(v, np.float32).reshape(WINDOW, 4)
                for v in s.scalars(select(BufferWindow.values))]
    assert len(kept) == 1
    np.testing.assert_array_equal(kept[0], x[1].astype(np.float32))


def test_a_value_beyond_float32_is_refused_where_it_is(api: Api, line: str) -> None:
    x = make_windows(3, 4, WINDOW).astype(np.float64)
    x[2, 5, 1] = 1e39  # finite in float64 and JSON, infinite in float32
    for kw in ({"json": {"windows": windows_json(x)}},
               {"content": _npy(x), "headers": {"Content-Type": "application/x-npy"}}):
        e = err(api.call("POST", f"/v1/lines/{line}/windows", **kw), 422, "invalid_values")
        assert e["details"] == {"window": 2, "row": 5, "channel": CHANNELS[1]}, e
        assert "beyond float32's range" in e["message"]
    body = orjson.dumps({"windows": windows_json(x[:2])}).replace(b"]]", b", 1%s]]" % (
        b"0" * 30), 1)  # an integer of 31 digits ends window 0's first row
    e = err(api.call("POST", f"/v1/lines/{line}/windows", content=body,
                     headers={"Content-Type": "application/json"}), 422, "invalid_window_shape")
    assert e["details"]["window"] == 0, e  # a row of 5 values, found by the general path
    assert api.call("GET", f"/v1/lines/{line}").json()["buffer"]["windows"] == 0


def test_json_and_binary_bodies_buffer_the_same_values(api: Api, line: str) -> None:
    x = make_windows(6, 4, WINDOW)
    x[2, 5, 1] = float("nan")
    for name, kw in (("json", {"json": {"windows": windows_json(x)}}),
                     ("npy", {"content": _npy(x),
                              "headers": {"Content-Type": "application/x-npy"}})):
        with api.svc.sessions() as s:
            s.query(BufferWindow).delete()
            s.commit()
        r = api.call("POST", f"/v1/lines/{line}/windows?batch_id={name}", **kw)
        assert r.status_code == 200, r.text
        with api.svc.sessions() as s:
            got = [np.frombuffer(v, np.float32).reshape(WINDOW, 4) for v in s.scalars(
                select(BufferWindow.values).order_by(BufferWindow.id))]
        np.testing.assert_array_equal(np.stack(got), x.astype(np.float32), err_msg=name)


def _npy(x) -> bytes:  # type: ignore[no-untyped-def]
    import io

    import numpy as np

    buf = io.BytesIO()
    np.save(buf, x)
    return buf.getvalue()


def test_binary_npy_body(api: Api, line: str) -> None:
    x = make_windows(7, 4, WINDOW)
    x[0, 0, 0] = float("nan")
    r = api.call("POST", f"/v1/lines/{line}/windows?batch_id=bin-1", content=_npy(x),
                 headers={"Content-Type": "application/x-npy"})
    assert r.status_code == 200, r.text
    assert [res["index"] for res in r.json()["results"]] == list(range(7))
    again = api.call("POST", f"/v1/lines/{line}/windows?batch_id=bin-1", content=_npy(x),
                     headers={"Content-Type": "application/x-npy"})
    assert again.json() == r.json()
    assert api.call("GET", f"/v1/lines/{line}").json()["buffer"]["windows"] == 7
    e = err(api.call("POST", f"/v1/lines/{line}/windows", content=_npy(x[:, :, :3]),
                     headers={"Content-Type": "application/x-npy"}), 422, "invalid_window_shape")
    assert e["details"]["expected"] == [None, WINDOW, 4]
    err(api.call("POST", f"/v1/lines/{line}/windows", content=_npy(__import__("numpy").float32(1)),
                 headers={"Content-Type": "application/x-npy"}), 422, "invalid_window_shape")
    e = err(api.call("POST", f"/v1/lines/{line}/windows", content=b"not numpy",
                     headers={"Content-Type": "application/x-npy"}), 422, "invalid_npy")
    assert "magic bytes" in e["message"] and "pickle" not in e["message"]
    obj = _npy(__import__("numpy").array([{"a": 1}], dtype=object))
    err(api.call("POST", f"/v1/lines/{line}/windows", content=obj,
                 headers={"Content-Type": "application/x-npy"}), 422, "invalid_npy")


def test_every_reference_in_the_openapi_document_resolves(api: Api) -> None:
    """Client generators (and schemathesis) read /openapi.json; the scoring body's schema once
    pointed at "#/$defs/WindowIn", which no document holds."""
    doc = api.client.get("/openapi.json").json()

    def refs(node: object) -> list[str]:
        if isinstance(node, dict):
            own = [node["$ref"]] if "$ref" in node else []
            return own + [r for v in node.values() for r in refs(v)]
        return [r for v in node for r in refs(v)] if isinstance(node, list) else []

    found = refs(doc)
    assert "#/components/schemas/ScoreResponse" in found
    for ref in found:
        node = doc
        for part in ref.removeprefix("#/").split("/"):
            assert part in node, f"{ref} does not resolve"
            node = node[part]
    body = doc["paths"]["/v1/lines/{line_id}/windows"]["post"]["requestBody"]["content"]
    assert body["application/json"]["schema"]["properties"]["windows"]["items"]["required"] == [
        "values"]
    assert {"/v1/lines/{line_id}/buffer"} <= set(doc["paths"])
    assert "delete" in doc["paths"]["/v1/lines/{line_id}"]
    retrain = doc["paths"]["/v1/lines/{line_id}/retrain"]["post"]["responses"]
    assert {"401", "403", "404", "409", "422"} <= set(retrain)  # in the contract's error shape
    assert retrain["409"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorOut"}
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    scraped = doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(scraped) == [api.client.get("/metrics").headers["content-type"]]


def test_a_time_without_a_zone_is_refused_where_it_is(api: Api, line: str) -> None:
    """The contract's times are RFC 3339 with a zone. A gateway's `start` without one was a
    500 (the database takes UTC only) and lost the batch; a query's `since` likewise."""
    x = make_windows(2, 4, WINDOW)
    body = {"windows": windows_json(x)}
    body["windows"][1]["start"] = "2026-12-07T10:00:00"
    e = err(api.call("POST", f"/v1/lines/{line}/windows", json=body), 422, "invalid_request")
    assert e["message"].startswith("windows[1].start") and "timezone" in e["message"]
    assert api.call("GET", f"/v1/lines/{line}").json()["buffer"]["windows"] == 0  # nothing kept
    for path in (f"/v1/lines/{line}/anomalies", "/v1/audit"):
        e = err(api.call("GET", path, params={"since": "2026-12-07T10:00:00"}), 422,
                "invalid_request")
        assert e["message"].startswith("since") and "timezone" in e["message"]
        assert api.call("GET", path, params={"since": "2026-12-07T10:00:00+01:00"}
                        ).status_code == 200


def test_a_time_beyond_the_calendar_once_in_utc_is_refused_where_it_is(api: Api, line: str
                                                                       ) -> None:
    """9999-12-31T23:59:59-14:00 is a valid RFC 3339 time whose UTC lies in year 10,000: it
    was a 500 wherever a time is taken."""
    late = "9999-12-31T23:59:59-14:00"
    body = {"windows": windows_json(make_windows(1, 4, WINDOW))}
    body["windows"][0]["start"] = late
    e = err(api.call("POST", f"/v1/lines/{line}/windows", json=body), 422, "invalid_request")
    assert e["message"].startswith("windows[0].start") and "UTC" in e["message"]
    for method, path, query in (("GET", f"/v1/lines/{line}/anomalies", "since"),
                                ("GET", "/v1/audit", "since"),
                                ("DELETE", f"/v1/lines/{line}/buffer", "until")):
        e = err(api.call(method, path, params={query: late}), 422, "invalid_request")
        assert e["message"].startswith(query) and "UTC" in e["message"]
    e = err(api.call("PUT", f"/v1/lines/{line}", json={
        "channels": CHANNELS, "window": WINDOW, "learn_flagged_until": late}), 422,
        "invalid_request")
    assert e["message"].startswith("learn_flagged_until")


def test_a_backlog_of_batch_answers_is_forgotten_a_slice_at_a_time(db_url: str) -> None:
    """The first tick after an upgrade finds every answer ever kept: it deletes the oldest
    `most` per tick, in short transactions, ties on one timestamp included."""
    sessions = make_sessionmaker(make_engine(db_url))
    long_ago = utcnow() - timedelta(days=30)
    with sessions() as s:
        s.add(Line(id="b", channels=["a"], window=2, retrain_interval_s=60, min_windows=20,
                   promotion="auto", target_false_alarm_rate=0.01, buffer_limit=100))
        s.flush()
        for i, minutes in enumerate([0, 1, 2, 2, 2, 3, 4]):  # three answers share a time
            s.add(IngestBatch(line_id="b", batch_id=f"b{i}", response={},
                              created_at=long_ago + timedelta(minutes=minutes)))
        s.add(IngestBatch(line_id="b", batch_id="recent", response={}))
        s.commit()
        cutoff = utcnow() - timedelta(days=1)
        assert [batches.forget_before(s, cutoff, most=2) for _ in range(5)] == [2, 3, 2, 0, 0]
        assert list(s.scalars(select(IngestBatch.batch_id))) == ["recent"]
