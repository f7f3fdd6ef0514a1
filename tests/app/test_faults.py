"""Faults on the service's side. The database goes away and comes back (PostgreSQL behind a
proxy the test cuts): clients get the contract's error shape and a 503 to retry, not a bare
500; /metrics still answers with the process's own counters and says the database is down;
scoring resumes by itself. A line's stored model is corrupt: that line answers a 500 in the
contract's shape, and every other line goes on scoring."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, update
from sqlalchemy.exc import OperationalError

from app.main import create_app
from app.tables import ModelVersion
from models.synthetic import make_windows
from tests.app.conftest import (
    CHANNELS,
    OPERATOR_KEY,
    WINDOW,
    Api,
    every_connection_held,
    line_with_model,
    settings_for,
    train_first_models,
    windows_json,
)
from tests.app.proxy import Proxy


@pytest.mark.postgres
def test_a_database_outage_is_a_503_to_retry_and_scoring_resumes_after_it(
        proxied_pg: tuple[str, Proxy]) -> None:
    url, proxy = proxied_pg
    with TestClient(create_app(settings_for(url))) as client:
        api = Api(client, {})
        r = api.call("PUT", "/v1/lines/p", json={"channels": CHANNELS, "window": WINDOW})
        assert r.status_code == 201, r.text
        body = {"batch_id": "gw-1", "windows": windows_json(make_windows(3, 4, WINDOW, 0))}
        assert api.call("POST", "/v1/lines/p/windows", json=body).status_code == 200

        proxy.set_cut(True)
        r = api.call("POST", "/v1/lines/p/windows", json=body | {"batch_id": "gw-2"})
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "database_unavailable"
        assert "send it again" in r.json()["error"]["message"]
        assert int(r.headers["Retry-After"]) > 0
        assert api.call("GET", "/v1/lines/p").status_code == 503
        assert api.call("GET", "/readyz").status_code == 503
        assert api.call("GET", "/healthz").status_code == 200
        scrape = api.call("GET", "/metrics")
        assert scrape.status_code == 200
        assert "lifeline_database_up 0.0" in scrape.text
        assert "lifeline_scoring_request_duration_seconds_count" in scrape.text

        proxy.set_cut(False)
        r = api.call("POST", "/v1/lines/p/windows", json=body | {"batch_id": "gw-2"})
        assert r.status_code == 200, r.text
        assert api.call("GET", "/v1/lines/p").json()["buffer"]["windows"] == 6
        assert "lifeline_database_up 1.0" in api.call("GET", "/metrics").text


@pytest.mark.postgres
def test_a_database_restart_during_a_retrain_loses_no_training(
        proxied_pg: tuple[str, Proxy], caplog: pytest.LogCaptureFixture) -> None:
    """PostgreSQL goes away while a line retrains (a restart, a failover) and comes back: the
    lease goes unrenewed for a while, the training goes on, and its version serves. (The job
    was failed at the first missed renewal, its training thrown away, while the worker went on
    training it for no one.)"""
    url, proxy = proxied_pg
    with TestClient(create_app(settings_for(url, train_max_epochs=400, job_lease_s=3))
                    ) as client:
        api = Api(client, {})
        api.call("PUT", "/v1/lines/p", json={"channels": CHANNELS, "window": WINDOW,
                                             "min_windows": 100})
        train_first_models(api, ["p"], make_windows(150, 4, WINDOW, 0, seed=1))
        api.call("POST", "/v1/lines/p/windows",
                 json={"windows": windows_json(make_windows(600, 4, WINDOW, 0, seed=2))})
        job_id = api.call("POST", "/v1/lines/p/retrain").json()["job_id"]
        running = api.svc.scheduler.tick()
        wait_for(lambda: "progress" in api.call("GET", f"/v1/jobs/{job_id}").json()["metrics"])
        proxy.set_cut(True)
        wait_for(lambda: any(r.name == "app.trainer" for r in caplog.records))  # it noticed
        proxy.set_cut(False)
        running[0].result(timeout=300)
        job = api.call("GET", f"/v1/jobs/{job_id}").json()
        assert (job["status"], job["model_version"]) == ("succeeded", 2), job
        assert api.call("GET", "/v1/lines/p").json()["active_model"]["version"] == 2
        assert "lease not renewed, the database did not answer" in caplog.text


@pytest.mark.postgres
def test_the_database_gone_as_a_job_starts_is_logged_and_the_job_runs_again(
        proxied_pg: tuple[str, Proxy], caplog: pytest.LogCaptureFixture) -> None:
    """The job is claimed, then the database goes away as its run reads the buffer: the run
    cannot even mark it failed. It is logged (it went unsaid), the job waits out its lease,
    and the reaper queues it again: the next tick trains it."""
    url, proxy = proxied_pg
    with TestClient(create_app(settings_for(url, job_lease_s=1))) as client:
        api = Api(client, {})
        api.call("PUT", "/v1/lines/p", json={"channels": CHANNELS, "window": WINDOW,
                                             "min_windows": 100})
        api.call("POST", "/v1/lines/p/windows",
                 json={"windows": windows_json(make_windows(150, 4, WINDOW, 0, seed=1))})
        engine = api.svc.sessions.kw["bind"]

        def cut_at_the_snapshot(_conn: object, _cursor: object, statement: str, *_: object
                                ) -> None:
            if "buffer_windows.values" in statement:
                proxy.set_cut(True)

        event.listen(engine, "before_cursor_execute", cut_at_the_snapshot)
        try:
            with pytest.raises(OperationalError):
                api.tick()
        finally:
            event.remove(engine, "before_cursor_execute", cut_at_the_snapshot)
        wait_for(lambda: "a training job's run ended in an error" in caplog.text)
        proxy.set_cut(False)
        job = api.call("GET", "/v1/lines/p/jobs").json()["jobs"][0]
        assert (job["status"], job["attempts"]) == ("running", 1)
        deadline = time.monotonic() + 30
        while not (started := api.svc.scheduler.tick()):  # reaped once its lease runs out
            assert time.monotonic() < deadline
            time.sleep(0.1)
        started[0].result(timeout=120)
        job = api.call("GET", "/v1/lines/p/jobs").json()["jobs"][0]
        assert (job["status"], job["attempts"]) == ("succeeded", 2)


def wait_for(condition: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_every_database_connection_busy_is_a_503_to_retry(db_url: str) -> None:
    """A burst beyond the connection pool, or connections held by slow work: a request that
    waited LIFELINE_DATABASE_POOL_TIMEOUT_S for one answers 503 with Retry-After (it was a
    500 internal_error), and succeeds once connections are free."""
    with TestClient(create_app(settings_for(db_url, database_pool_timeout_s=0.2))) as client:
        api = Api(client, {})
        assert api.call("PUT", "/v1/lines/p", json={"channels": CHANNELS, "window": WINDOW}
                        ).status_code == 201
        body = {"windows": windows_json(make_windows(2, 4, WINDOW, 0))}
        with every_connection_held(api):
            r = api.call("POST", "/v1/lines/p/windows", json=body)
        assert (r.status_code, r.json()["error"]["code"]) == (503, "database_unavailable")
        assert int(r.headers["Retry-After"]) > 0
        assert api.call("POST", "/v1/lines/p/windows", json=body).status_code == 200


def test_a_corrupt_model_fails_its_own_line_only(db_url: str) -> None:
    """Bit rot or a hand edit in one line's stored model: a 500 on that line saying which
    version and what to do, and the other line, and its model, go on scoring."""
    x = make_windows(250, 4, WINDOW, 0, seed=1)
    with TestClient(create_app(settings_for(db_url, train_max_epochs=3))) as client:
        api = Api(client, {})
        for line in ("a", "b"):
            r = api.call("PUT", f"/v1/lines/{line}", json={"channels": CHANNELS,
                                                           "window": WINDOW, "min_windows": 200})
            assert r.status_code == 201, r.text
        train_first_models(api, ["a", "b"], x)
        with client.app.state.services.sessions() as s:  # type: ignore[attr-defined]
            s.execute(update(ModelVersion).where(ModelVersion.line_id == "a")
                      .values(artifact=b"not a model"))
            s.commit()
    # A new process: the models are read from the database again, not from its cache.
    app = create_app(settings_for(db_url))
    with TestClient(app, raise_server_exceptions=False) as client:
        api = Api(client, {})
        body = {"windows": windows_json(x[:2])}
        r = api.call("POST", "/v1/lines/a/windows", json=body)
        assert r.status_code == 500
        assert r.json()["error"]["code"] == "model_unloadable"
        assert "version 1" in r.json()["error"]["message"]
        r = api.call("POST", "/v1/lines/b/windows", json=body)
        assert r.status_code == 200 and r.json()["results"][0]["status"] == "scored"


def test_an_unexpected_fault_answers_in_the_contract_s_shape(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fault no handler foresaw (here the scoring itself fails, as a device out of memory
    would): a 500 `internal_error` in the contract's JSON shape, not Starlette's plain text."""
    line_with_model(api, "m")

    def out_of_memory(*_: object, **__: object) -> None:
        raise RuntimeError("out of memory")

    monkeypatch.setattr("app.scorer.models.score", out_of_memory)
    client = TestClient(api.client.app, raise_server_exceptions=False)
    r = client.post("/v1/lines/m/windows", headers={"Authorization": f"Bearer {OPERATOR_KEY}"},
                    json={"windows": windows_json(make_windows(1, 4, WINDOW, 0))})
    assert r.status_code == 500
    assert r.json()["error"]["code"] == "internal_error"
    assert "RuntimeError" in r.json()["error"]["message"]
