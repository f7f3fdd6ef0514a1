"""Scoring through a database outage: a line whose model this process holds is still scored,
in the 503's details, so its gateway sees an alarm at once; nothing of it is stored, and the
batch sent again once the database answers is stored and counted as any other."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from app import auth
from app.main import create_app
from models.synthetic import make_windows
from tests.app.conftest import (
    CHANNELS,
    WINDOW,
    Api,
    coded_window,
    every_connection_held,
    line_with_model,
    metric,
    post_windows,
    settings_for,
    windows_json,
)
from tests.app.proxy import Proxy


def _batch() -> np.ndarray:
    """Three normal windows and one that any model flags, [4, WINDOW, 4]."""
    return np.concatenate([make_windows(3, 4, WINDOW, 0, seed=5), coded_window(6)])


def _down(r: Any) -> dict[str, Any] | None:
    """A 503 to resend, as the contract has it; its provisional answer, if any."""
    assert r.status_code == 503, r.text
    error = r.json()["error"]
    assert error["code"] == "database_unavailable" and "send it again" in error["message"]
    assert int(r.headers["Retry-After"]) > 0
    return (error["details"] or {}).get("provisional")


def _same_scores(provisional: dict[str, Any], line: str, stored: list[dict[str, Any]]) -> None:
    assert (provisional["line_id"], provisional["model_version"]) == (line, 1)
    got = provisional["results"]
    assert [r["score"] for r in got] == pytest.approx([r["score"] for r in stored], rel=1e-5)
    assert [r["anomaly"] for r in got] == [False, False, False, True]
    assert [r["alarm_channels"] for r in got] == [r["alarm_channels"] for r in stored]
    assert all(r["event_id"] is None for r in got)  # no event exists for them


def _buffered(api: Api, line: str) -> int:
    return api.call("GET", f"/v1/lines/{line}").json()["buffer"]["windows"]  # type: ignore[no-any-return]


@pytest.mark.postgres
def test_an_outage_answers_a_scored_503_and_the_batch_sent_again_is_stored(
        proxied_pg: tuple[str, Proxy], monkeypatch: pytest.MonkeyPatch) -> None:
    url, proxy = proxied_pg
    monkeypatch.setattr(auth, "KEY_CACHE_S", 0.0)  # every request asks the database for its key
    with TestClient(create_app(settings_for(url, train_max_epochs=3))) as client:
        api = Api(client, {})
        line_with_model(api, "p")
        assert api.call("PUT", "/v1/lines/w", json={"channels": CHANNELS, "window": WINDOW}
                        ).status_code == 201  # warming up: no model to score with
        x = _batch()
        stored = post_windows(api, "p", x, learn=False)
        before, buffered = metric(client, "lifeline_windows_scored_total", 'line="p"'), \
            _buffered(api, "p")
        body = {"batch_id": "gw-9", "windows": windows_json(x)}

        proxy.set_cut(True)
        provisional = _down(api.call("POST", "/v1/lines/p/windows", json=body))
        assert provisional is not None
        _same_scores(provisional, "p", stored)
        assert metric(client, "lifeline_provisional_windows_scored_total", 'line="p"') == 4
        assert metric(client, "lifeline_provisional_anomalous_windows_total", 'line="p"') == 1
        assert metric(client, "lifeline_windows_scored_total", 'line="p"') == before
        short = {"windows": windows_json(x[:, :-1])}  # the body's fault is still named
        r = api.call("POST", "/v1/lines/p/windows", json=short)
        assert (r.status_code, r.json()["error"]["code"]) == (422, "invalid_window_shape")
        assert _down(api.call("POST", "/v1/lines/w/windows", json=body)) is None
        assert _down(api.call("POST", "/v1/lines/p/windows", json=body, key="unknown")) is None

        proxy.set_cut(False)
        r = api.call("POST", "/v1/lines/p/windows", json=body)
        assert r.status_code == 200, r.text
        again = r.json()["results"]
        assert again[3]["anomaly"] and again[3]["event_id"] is not None
        assert _buffered(api, "p") == buffered + 3
        assert metric(client, "lifeline_windows_scored_total", 'line="p"') == before + 4
        events = api.call("GET", "/v1/lines/p/anomalies").json()["anomalies"]
        assert [e["windows"] for e in events] == [2]  # the first post's and the resend's

        engine = api.svc.sessions.kw["bind"]

        def cut_at_the_buffer(_conn: object, _cursor: object, statement: str, *_: object
                              ) -> None:
            if statement.lstrip().upper().startswith("INSERT INTO BUFFER_WINDOWS"):
                proxy.set_cut(True)

        event.listen(engine, "before_cursor_execute", cut_at_the_buffer)
        try:  # scored, then the database goes as the batch is stored
            provisional = _down(api.call("POST", "/v1/lines/p/windows",
                                         json=body | {"batch_id": "gw-10"}))
        finally:
            event.remove(engine, "before_cursor_execute", cut_at_the_buffer)
        assert provisional is not None
        _same_scores(provisional, "p", stored)
        proxy.set_cut(False)
        assert _buffered(api, "p") == buffered + 3  # none of it was kept
        events = api.call("GET", "/v1/lines/p/anomalies").json()["anomalies"]
        assert [e["windows"] for e in events] == [2]
        assert api.call("POST", "/v1/lines/p/windows", json=body | {"batch_id": "gw-10"}
                        ).status_code == 200
        assert _buffered(api, "p") == buffered + 6

        assert api.call("DELETE", "/v1/lines/p").status_code == 204
        proxy.set_cut(True)  # a deleted line is not scored from memory
        assert _down(api.call("POST", "/v1/lines/p/windows", json=body)) is None


def test_every_connection_busy_still_scores_a_line_in_memory(
        db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The embedded SQLite too: every pooled connection held, the batch is scored from memory
    in the 503's details, for a key checked within KEY_OUTAGE_S; one checked longer ago is
    not taken on trust (it may have been revoked on another replica meanwhile)."""
    monkeypatch.setattr(auth, "KEY_CACHE_S", 0.0)  # every request asks the database for its key
    with TestClient(create_app(settings_for(db_url, train_max_epochs=3,
                                            database_pool_timeout_s=0.2))) as client:
        api = Api(client, {})
        line_with_model(api, "p")
        x = _batch()
        stored = post_windows(api, "p", x, learn=False)
        body = {"windows": windows_json(x)}
        with every_connection_held(api):
            provisional = _down(api.call("POST", "/v1/lines/p/windows", json=body))
            monkeypatch.setattr(auth, "KEY_OUTAGE_S", 0.0)
            assert _down(api.call("POST", "/v1/lines/p/windows", json=body)) is None
        assert provisional is not None
        _same_scores(provisional, "p", stored)
