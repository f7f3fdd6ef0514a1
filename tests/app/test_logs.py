"""The service's log as an operator or a log shipper reads it (app/logs.py): a real `lifeline
serve`, its real stderr."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from app import errors
from app.logs import EveryFewSeconds, config
from app.main import create_app
from app.settings import Settings
from bench.server import npy_bytes
from models.synthetic import make_windows
from tests.app.conftest import (
    OPERATOR_KEY,
    Api,
    every_connection_held,
    free_port,
    settings_for,
    wait_ready,
)


def _serve_and_train_a_line(tmp_path: Path, **env: str) -> list[str]:
    """A server on SQLite whose line trains its first model in the spawned training process,
    stopped by SIGTERM; its stderr lines."""
    port, base = free_port(), ""
    env = {**os.environ, "LIFELINE_DATABASE_URL": f"sqlite:///{tmp_path / 'l.db'}",
           "LIFELINE_PORT": str(port), "LIFELINE_BOOTSTRAP_OPERATOR_KEY": OPERATOR_KEY,
           "LIFELINE_TICK_SECONDS": "0.5", "LIFELINE_CALIBRATION_FOLDS": "0",
           "LIFELINE_TRAIN_MAX_EPOCHS": "3", "LIFELINE_TRAIN_EXECUTOR": "process", **env}
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "serve"], env=env,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        base, auth = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {OPERATOR_KEY}"}
        wait_ready(base, proc)
        httpx.put(f"{base}/v1/lines/l", headers=auth, json={
            "channels": ["a", "b", "c"], "window": 16, "min_windows": 100}).raise_for_status()
        httpx.post(f"{base}/v1/lines/l/windows", headers={**auth, "Content-Type":
                   "application/x-npy"}, content=npy_bytes(make_windows(120, 3, 16, 0, seed=1))
                   ).raise_for_status()
        deadline = time.time() + 120
        while httpx.get(f"{base}/v1/lines/l", headers=auth).json()["state"] != "ready":
            assert time.time() < deadline, "the first model never served"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return err.decode().splitlines()


def test_json_logs_are_one_object_a_line_with_the_ids_as_fields(tmp_path: Path) -> None:
    """Every line a log shipper reads is JSON (Python's warnings included: at every stop the
    resource tracker used to warn of the training process's "leaked semaphore objects"),
    and a retrain's start and end carry the line, the job and the version as fields."""
    lines = _serve_and_train_a_line(tmp_path, LIFELINE_LOG_FORMAT="json")
    records = [json.loads(line) for line in lines]  # fails on any line that is not JSON
    assert all({"time", "level", "logger", "message"} <= r.keys() for r in records)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r["time"]) for r in records)
    assert not [r for r in records if r["logger"].startswith("apscheduler")]  # no tick chatter
    start, end = [r for r in records if r["logger"] == "app.trainer"]
    assert (start["line_id"], start["windows"], start["teacher"]) == ("l", 120, None)
    assert (end["line_id"], end["job_id"], end["version"], end["activated"]) == (
        "l", start["job_id"], 1, True)
    assert "version 1 activated, 120 buffered windows deleted" in end["message"]
    assert records[-1]["message"].startswith("Finished server process")


def test_text_logs_say_when_in_utc(tmp_path: Path) -> None:
    lines = _serve_and_train_a_line(tmp_path, LIFELINE_LOG_LEVEL="info")
    assert all(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (INFO|WARNING|ERROR) \S+: ", line)
               for line in lines), lines
    assert any(re.search(r"app\.trainer: job \S+: line l version 1 activated", line)
               for line in lines)


def test_a_log_level_above_info_keeps_the_routine_out() -> None:
    cfg = config(Settings(log_level="warning"))
    assert cfg["root"]["level"] == "WARNING" and cfg["loggers"]["uvicorn.error"]["level"] == (
        "WARNING")


def test_an_outage_is_logged_every_few_seconds_not_once_a_request(
        db_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The 503s and the scheduler's ticks each say so once every DB_WARNING_S, with how many
    came meanwhile; a tick leaves no traceback for an outage (it is not the code's fault)."""
    monkeypatch.setattr(errors, "_database_warning", EveryFewSeconds(errors.log, 10.0))
    with TestClient(create_app(settings_for(db_url, database_pool_timeout_s=0.1))) as client:
        api = Api(client, {})
        with every_connection_held(api), caplog.at_level(logging.WARNING):
            for _ in range(4):
                assert api.call("GET", "/v1/lines").status_code == 503
                api.svc.scheduler._safe_tick()
            errors._database_warning.seconds = api.svc.scheduler._outage.seconds = 0.0
            assert api.call("GET", "/v1/lines").status_code == 503
            api.svc.scheduler._safe_tick()
    said = {name: [(r.getMessage(), r.exc_info) for r in caplog.records if r.name == name]
            for name in ("app.errors", "app.scheduler")}
    for name, what in (("app.errors", "database unavailable, answered 503: "),
                       ("app.scheduler", "scheduler tick skipped, the database did not answer: ")):
        (first, no_trace), (second, _) = said[name]
        assert first.startswith(what) and "times since" not in first and no_trace is None
        assert second.startswith(what) and second.endswith("(4 times since the last such message)")
