"""The audit trail over HTTP: who did what to which line, newest first, filtered and paged,
kept after the line itself is deleted."""

from __future__ import annotations

import logging

import pytest

from models.synthetic import make_windows
from tests.app.conftest import CHANNELS, WINDOW, Api, train_first_models, windows_json


def test_operators_read_who_did_what_newest_first_even_for_a_deleted_line(
        api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "app.audit")
    cfg = {"channels": CHANNELS, "window": WINDOW, "min_windows": 200}
    for line in ("a", "b"):
        assert api.call("PUT", f"/v1/lines/{line}", json=cfg).status_code == 201
    train_first_models(api, ["a"], make_windows(250, 4, WINDOW, 0, seed=1))
    api.call("POST", "/v1/lines/a/windows",
             json={"windows": windows_json(make_windows(250, 4, WINDOW, 0, seed=2))})
    r = api.call("POST", "/v1/lines/a/retrain", json={"reason": "new seals"})
    assert r.status_code == 202
    assert api.call("POST", f"/v1/jobs/{r.json()['job_id']}/cancel").status_code == 200
    assert api.call("POST", "/v1/lines/a/models/1/activate").status_code == 200
    assert api.call("DELETE", "/v1/lines/b").status_code == 204

    entries = api.call("GET", "/v1/audit").json()["entries"]
    assert [(e["action"], e["line_id"]) for e in entries] == [
        ("line.delete", "b"), ("model.activate", "a"), ("job.cancel", "a"),
        ("line.retrain", "a"), ("line.create", "b"), ("line.create", "a"), ("key.create", None)]
    assert entries[3]["details"]["reason"] == "new seals"
    assert all(e["actor"] == "key:1:bootstrap" for e in entries[:-1])
    assert entries[-1]["actor"] == "service:bootstrap"  # the first key, from the environment
    assert entries[-1]["details"] == {"key_id": 1, "role": "operator", "name": "bootstrap"}

    # each entry reaches the log once committed, the same facts (app/audit.py)
    logged = [r for r in caplog.records if r.name == "app.audit"]
    assert [(r.action, r.line_id, r.details) for r in logged] == [
        (e["action"], e["line_id"], e["details"]) for e in reversed(entries[:-1])]
    assert logged[0].getMessage() == "key:1:bootstrap line.create on line a: " + " ".join(
        f"{k}={v}" for k, v in entries[-2]["details"].items())
    caplog.clear()  # a change refused (a 409) commits nothing, so logs nothing
    assert api.call("PUT", "/v1/lines/a", json={**cfg, "window": 8}).status_code == 409
    assert not [r for r in caplog.records if r.name == "app.audit"]

    mine = api.call("GET", "/v1/audit", params={"line_id": "b"}).json()["entries"]
    assert [e["action"] for e in mine] == ["line.delete", "line.create"]  # b is gone, its trail
    rollbacks = api.call("GET", "/v1/audit", params={"action": "model.activate"}).json()
    assert [e["details"]["version"] for e in rollbacks["entries"]] == [1]
    page = api.call("GET", "/v1/audit", params={"limit": 2}).json()["entries"]
    older = api.call("GET", "/v1/audit", params={"before": page[-1]["id"]}).json()["entries"]
    assert [e["id"] for e in page + older] == [e["id"] for e in entries]
    later = api.call("GET", "/v1/audit", params={"since": entries[0]["at"]}).json()["entries"]
    assert [e["id"] for e in later] == [entries[0]["id"]]

    assert api.call("GET", "/v1/audit", key=None).status_code == 401
    assert api.call("GET", "/v1/audit", key=api.new_key("gateway")).status_code == 403
    assert api.call("GET", "/v1/audit", key=api.new_key("viewer")).status_code == 200
    bad = api.call("GET", "/v1/audit", params={"limit": 0})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"
