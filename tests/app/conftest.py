"""A real app on a real database, driven through a real HTTP client (httpx over ASGI)."""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app.api.deps import Services
from app.auth import create_key
from app.main import create_app
from app.settings import Settings
from models.synthetic import inject_fault, make_windows
from tests.app.proxy import Proxy
from tests.conftest import pg_schema

OPERATOR_KEY = "op-test-key"
CHANNELS = ["pressure", "flow", "temp", "vibration"]
WINDOW = 16


@dataclass
class Api:
    client: TestClient
    headers: dict[str, str]

    @property
    def svc(self) -> Services:
        return self.client.app.state.services  # type: ignore[attr-defined,no-any-return]

    def call(self, method: str, url: str, key: str | None = OPERATOR_KEY, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        headers.update(kw.pop("headers", {}))
        return self.client.request(method, url, headers=headers, **kw)

    def new_key(self, role: str, lines: list[str] | None = None) -> str:
        """A fresh API key of `role`, created as `lifeline keys create` does."""
        with self.svc.sessions() as s:
            _, key = create_key(s, role=role, name=f"test-{role}", actor="test", lines=lines)
            s.commit()
        return key

    def tick(self) -> None:
        """One scheduler tick, waiting for the jobs it started (no sleeps)."""
        for fut in self.svc.scheduler.tick():
            fut.result(timeout=300)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(base: str, proc: subprocess.Popen[bytes]) -> None:
    """Until a real server (`lifeline serve`) answers /readyz, or it exits."""
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError(f"the server did not become ready (exit code {proc.poll()})")


def settings_for(url: str, **kw: Any) -> Settings:
    base = dict(database_url=url, scheduler_enabled=False, train_executor="thread",
                train_max_epochs=15, bootstrap_operator_key=OPERATOR_KEY, buffer_limit=5000)
    return Settings(**{**base, **kw})  # type: ignore[arg-type]


@pytest.fixture
def proxied_pg(pg_url: str) -> Iterator[tuple[str, Proxy]]:  # pg_url: skips or fails without one
    """A PostgreSQL database reached through a Proxy the test cuts to stage an outage."""
    with pg_schema("lifeline_outage") as url:
        proxy = Proxy(5432)
        try:
            yield url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}"), proxy
        finally:
            proxy.close()


@pytest.fixture
def api(db_url: str) -> Iterator[Api]:
    with TestClient(create_app(settings_for(db_url))) as client:
        yield Api(client, {"Authorization": f"Bearer {OPERATOR_KEY}"})


def train_first_models(api: Api, lines: list[str], windows: np.ndarray) -> None:
    """Buffer the same normal windows on each line and run the scheduler until every line has
    its first model (a tick may start one line's first model at a time)."""
    for line in lines:
        r = api.call("POST", f"/v1/lines/{line}/windows", json={"windows": windows_json(windows)})
        assert r.status_code == 200, r.text
    for _ in lines:
        api.tick()
    for line in lines:
        assert api.call("GET", f"/v1/lines/{line}").json()["state"] == "ready", line


def line_with_model(api: Api, line: str) -> None:
    """A new line on CHANNELS x WINDOW and its first model, trained on 250 normal windows."""
    r = api.call("PUT", f"/v1/lines/{line}", json={"channels": CHANNELS, "window": WINDOW,
                                                   "min_windows": 200})
    assert r.status_code == 201, r.text
    train_first_models(api, [line], make_windows(250, 4, WINDOW, 0, seed=1))


def windows_json(x: np.ndarray, start_s: int = 0) -> list[dict[str, Any]]:
    out = []
    for i, w in enumerate(x):
        values = [[None if np.isnan(v) else float(v) for v in row] for row in w]
        t = start_s + i
        out.append({"start": f"2026-11-28T05:{t // 60 % 60:02d}:{t % 60:02d}Z", "values": values})
    return out


def coded_window(seed: int) -> np.ndarray:
    """One normal window [1, WINDOW, 4] whose sensor 1 reads a fault code (3e38, finite in
    float32) at step 3: an alarm under any model, named after that sensor."""
    x = make_windows(1, 4, WINDOW, 0, seed=seed)
    x[0, 3, 1] = 3e38
    return x


def post_windows(api: Api, line: str, x: np.ndarray, start_s: int = 0, **kw: Any
                 ) -> list[dict[str, Any]]:
    """The per-window results of posting `x`, windows starting a second apart from `start_s`;
    `kw` joins the body (learn, batch_id)."""
    r = api.call("POST", f"/v1/lines/{line}/windows",
                 json={"windows": windows_json(x, start_s), **kw})
    assert r.status_code == 200, r.text
    return r.json()["results"]  # type: ignore[no-any-return]


@contextlib.contextmanager
def every_connection_held(api: Api) -> Iterator[None]:
    """Every connection the service's pool will give, held: a request meanwhile waits out
    LIFELINE_DATABASE_POOL_TIMEOUT_S for one."""
    engine, held = api.svc.sessions.kw["bind"], []
    try:
        while True:
            try:
                held.append(engine.connect())
            except PoolTimeout:
                break
        yield
    finally:
        for conn in held:
            conn.close()


def sql_of(api: Api, act: Callable[[], object]) -> list[str]:
    """The SQL statements `act` sent to the database."""
    sent: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        sent.append(statement)

    engine = api.svc.sessions.kw["bind"]
    event.listen(engine, "before_cursor_execute", record)
    try:
        act()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return sent


def writes_of(api: Api, act: Callable[[], object]) -> list[str]:
    """The statements `act` sent that write or take a write lock."""
    return [q for q in sql_of(api, act) if _writes(q)]


def _writes(statement: str) -> bool:
    q = statement.upper()
    return q.lstrip().startswith(("UPDATE", "INSERT", "DELETE", "BEGIN IMMEDIATE")) \
        or "FOR UPDATE" in q or "FOR NO KEY UPDATE" in q


def exported_series(api: Api) -> set[str]:
    """Every series name on /metrics as a line trains, scores, alarms, sees a stuck sensor and
    retrains (a labelled metric shows only after its first sample)."""
    line_with_model(api, "p")
    fault = inject_fault(make_windows(4, 4, WINDOW, 0, seed=2), channel=2, magnitude=12.0)
    assert any(x["anomaly"] for x in post_windows(api, "p", fault))
    held = make_windows(1, 4, WINDOW, 0, seed=4)
    held[0, :, 0] = held[0, 0, 0]  # sensor 0 stuck at one reading
    assert post_windows(api, "p", held, learn=False)[0]["stuck_channels"] == [CHANNELS[0]]
    post_windows(api, "p", make_windows(250, 4, WINDOW, 0, seed=3))
    assert api.call("POST", "/v1/lines/p/retrain").status_code == 202
    queued = api.call("GET", "/metrics").text  # a job's age
    api.tick()
    assert api.call("GET", "/v1/lines/p").json()["active_model"]["version"] == 2
    retrained = api.call("GET", "/metrics").text  # a student's gate figures against its teacher
    return {m.group(1) for m in re.finditer(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]",
                                            queued + retrained, re.M)}


def metrics_named(expr: str) -> set[str]:
    """The metrics a PromQL expression reads (Lifeline's, and Prometheus's own `up`)."""
    expr = re.sub(r'"[^"]*"', "", expr)  # label values are not metric names
    return set(re.findall(r"\b(lifeline_[a-z0-9_]+|up)\b", expr))


def metric(client: TestClient, name: str, labels: str = "") -> float:
    """One sample's value off /metrics: `labels` as Prometheus prints them, 'line="a"'."""
    series = f"{name}{{{labels}}}" if labels else name
    m = re.search(rf"^{re.escape(series)} (\S+)$", client.get("/metrics").text, re.M)
    assert m, f"{series} not in /metrics"
    return float(m.group(1))
