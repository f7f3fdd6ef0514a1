"""Lines driven through seeded random sequences of what gateways and operators do (post,
resend a batch, discard, lower or raise the buffer's bound, vouch, retrain, let the scheduler
run, promote or roll back, cancel, acknowledge, delete and set up again), on both databases,
checking after every step what the product promises: the buffer bounded and its size exact,
no window kept once a model it trained has served (the retention guarantee), a rollback
deleting nothing, one active version and the line agreeing on which, one open job at most, an
open event that exists. A failure names the seed and the steps taken."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.main import create_app
from app.tables import AnomalyEvent, BufferWindow, Line, ModelVersion, TrainingJob
from models.synthetic import inject_fault, make_windows
from tests.app.conftest import CHANNELS, WINDOW, Api, settings_for, windows_json

MIN_WINDOWS, STEPS = 30, 120
TIMES = ["2026-11-28T05:00:00Z", "2026-11-28T05:01:00Z", "2026-11-28T05:02:00Z", None]


class Operations:
    """One line and the calls made on it, each asserting its own answer."""

    def __init__(self, api: Api, rng: np.random.Generator, line: str) -> None:
        self.api, self.rng, self.line, self.posted = api, rng, line, 0
        self.config = {"channels": CHANNELS, "window": WINDOW, "min_windows": MIN_WINDOWS,
                       "buffer_limit": int(rng.integers(MIN_WINDOWS, 121)),
                       "promotion": str(rng.choice(["auto", "manual"]))}
        api.call("DELETE", f"/v1/lines/{self.line}")  # the last sequence's line, and all it held
        assert api.call("PUT", f"/v1/lines/{self.line}", json=self.config).status_code == 201

    def post(self) -> str:
        n, fault = int(self.rng.integers(1, 61)), bool(self.rng.random() < 0.3)
        learn = bool(self.rng.random() < 0.7)
        x = make_windows(n, len(CHANNELS), WINDOW, 0, seed=self.posted)
        self.posted += 1
        if fault:
            x = inject_fault(x, channel=2)
        body = {"learn": learn, "windows": windows_json(x, int(self.rng.integers(0, 150)))}
        r = self.api.call("POST", f"/v1/lines/{self.line}/windows", json=body)
        assert r.status_code == 200, r.text
        return f"post {n} fault={fault} learn={learn}"

    def replay(self) -> str:
        """A gateway resends a batch it got no answer for: answered alike, buffered once."""
        self.posted += 1
        x = make_windows(int(self.rng.integers(1, 30)), len(CHANNELS), WINDOW, 0,
                         seed=self.posted)
        body = {"batch_id": f"b{self.posted}", "windows": windows_json(x)}
        first = self.api.call("POST", f"/v1/lines/{self.line}/windows", json=body)
        held = rows(self.api, BufferWindow, self.line)
        again = self.api.call("POST", f"/v1/lines/{self.line}/windows", json=body)
        assert first.status_code == again.status_code == 200, again.text
        assert again.json() == first.json() and rows(self.api, BufferWindow, self.line) == held
        return f"replay b{self.posted}"

    def vouch(self) -> str:
        """An operator vouches for the line's data for an hour, or ends it."""
        until = "2099-01-01T00:00:00Z" if self.rng.random() < 0.5 else None
        self.config["learn_flagged_until"] = until
        assert self.api.call("PUT", f"/v1/lines/{self.line}", json=self.config).status_code == 200
        return f"vouch until {until}"

    def recreate(self) -> str:
        """The line is decommissioned and set up again under its name: it starts empty."""
        assert self.api.call("DELETE", f"/v1/lines/{self.line}").status_code == 204
        assert self.api.call("PUT", f"/v1/lines/{self.line}", json=self.config).status_code == 201
        return "recreate"

    def discard(self) -> str:
        since, until = self.rng.choice(TIMES), self.rng.choice(TIMES)
        params = {k: v for k, v in (("since", since), ("until", until)) if v}
        r = self.api.call("DELETE", f"/v1/lines/{self.line}/buffer", params=params)
        backwards = since is not None and until is not None and since >= until
        assert r.status_code == (422 if backwards else 200), r.text
        return f"discard {params}"

    def set_limit(self) -> str:
        limit = int(self.rng.integers(10, 151))
        r = self.api.call("PUT", f"/v1/lines/{self.line}",
                          json=self.config | {"buffer_limit": limit})
        assert r.status_code == (200 if limit >= MIN_WINDOWS else 422), r.text
        if r.status_code == 200:
            self.config["buffer_limit"] = limit
        return f"buffer_limit {limit}"

    def retrain(self) -> str:
        held, new_regime = rows(self.api, BufferWindow, self.line), bool(self.rng.random() < 0.3)
        r = self.api.call("POST", f"/v1/lines/{self.line}/retrain", json={"new_regime": new_regime})
        if r.status_code == 409:
            code = r.json()["error"]["code"]
            assert code == "job_in_progress" or (
                code == "not_enough_windows" and held < MIN_WINDOWS), r.text
        else:
            assert r.status_code == 202, r.text
        return f"retrain new_regime={new_regime}: {r.status_code}"

    def tick(self) -> str:
        self.api.tick()
        return "tick"

    def activate(self) -> str:
        version = int(self.rng.integers(1, 5))
        with self.api.svc.sessions() as s:
            row = s.scalar(select(ModelVersion).where(ModelVersion.line_id == self.line,
                                                      ModelVersion.version == version))
            expected = 404 if row is None else 409 if row.status == "rejected" else 200
            served_before = row is not None and row.activated_at is not None
        held = rows(self.api, BufferWindow, self.line)
        r = self.api.call("POST", f"/v1/lines/{self.line}/models/{version}/activate")
        assert r.status_code == expected, r.text
        if served_before:  # its windows went when it first served: a rollback deletes none
            assert rows(self.api, BufferWindow, self.line) == held, "a rollback deleted windows"
        return f"activate {version}: {r.status_code}"

    def cancel(self) -> str:
        with self.api.svc.sessions() as s:
            job = s.scalar(select(TrainingJob.id).where(TrainingJob.line_id == self.line,
                                                        TrainingJob.status == "queued"))
        if job is not None:
            assert self.api.call("POST", f"/v1/jobs/{job}/cancel").status_code == 200
        return f"cancel {job}"

    def acknowledge(self) -> str:
        events = self.api.call("GET", f"/v1/lines/{self.line}/anomalies").json()["anomalies"]
        if not events:
            return "acknowledge: no event"
        verdict = self.rng.choice(["fault", "false_alarm"])
        event = events[0]["id"]
        r = self.api.call("POST", f"/v1/lines/{self.line}/anomalies/{event}/acknowledge",
                          json={"verdict": verdict})
        assert r.status_code == 200, r.text
        return f"acknowledge {event} {verdict}"


def rows(api: Api, table: Any, line: str, *where: Any) -> int:
    with api.svc.sessions() as s:
        return s.scalar(select(func.count()).select_from(table).where(
            table.line_id == line, *where)) or 0


def check_promises(api: Api, line_id: str) -> None:
    reported = api.call("GET", f"/v1/lines/{line_id}").json()["buffer"]["windows"]
    with api.svc.sessions() as s:
        line = s.get_one(Line, line_id)
        held = set(s.scalars(select(BufferWindow.id).where(BufferWindow.line_id == line_id)))
        assert reported == line.buffer_windows == len(held) <= line.buffer_limit
        for ids in s.scalars(select(ModelVersion.trained_window_ids).where(
                ModelVersion.line_id == line_id, ModelVersion.activated_at.is_not(None))):
            assert held.isdisjoint(np.frombuffer(ids, dtype="<i8").tolist()), "retention"
        active = list(s.scalars(select(ModelVersion.version).where(
            ModelVersion.line_id == line_id, ModelVersion.status == "active")))
        assert active == ([] if line.active_version is None else [line.active_version])
        if line.open_event_id is not None:
            assert s.get_one(AnomalyEvent, line.open_event_id).line_id == line_id
    assert rows(api, TrainingJob, line_id, TrainingJob.status.in_(("queued", "running"))) <= 1


# How often each operation comes up: mostly posts, a tick in every few steps.
WEIGHTS: dict[str, float] = {"post": 8, "tick": 3, "retrain": 2, "activate": 2, "discard": 1.5,
                             "set_limit": 1.5, "replay": 1, "vouch": 0.5, "cancel": 1,
                             "acknowledge": 1, "recreate": 0.3}


@pytest.mark.parametrize("seed", range(4))
def test_lines_keep_their_promises_through_any_sequence_of_operations(db_url: str, seed: int
                                                                      ) -> None:
    """Two lines, each step on one of them: what one line does never touches the other."""
    rng = np.random.default_rng(seed)
    names = list(WEIGHTS)
    p = np.array([WEIGHTS[n] for n in names]) / sum(WEIGHTS.values())
    with TestClient(create_app(settings_for(db_url, train_max_epochs=2))) as client:
        api = Api(client, {})
        lines = [Operations(api, rng, "k"), Operations(api, rng, "j")]
        steps: list[str] = []
        trained: set[str] = set()
        for name in rng.choice(names, size=STEPS, p=p):
            ops = lines[int(rng.integers(2))]
            op: Callable[[], str] = getattr(ops, str(name))
            try:
                steps.append(f"{ops.line}: {op()}")
                for other in lines:
                    check_promises(api, other.line)
                    if rows(api, ModelVersion, other.line):
                        trained.add(other.line)
            except AssertionError as exc:
                raise AssertionError(f"seed {seed}, after {steps}: {exc}") from exc
    assert trained == {"k", "j"}, steps  # each line trained at least once


def test_gateways_and_an_operator_at_once_leave_every_promise_kept(db_url: str) -> None:
    """Four gateways post to one line while an operator discards, resizes, retrains, runs the
    scheduler and rolls back, all at once: no call fails for the race (no 500, no lost
    lock), and afterwards every promise holds."""
    with TestClient(create_app(settings_for(db_url, train_max_epochs=2))) as client:
        api = Api(client, {})
        operator = Operations(api, np.random.default_rng(7), "k")

        def gateway(seed: int) -> list[int]:
            rng = np.random.default_rng(seed)
            codes = []
            for i in range(30):
                x = make_windows(int(rng.integers(1, 21)), len(CHANNELS), WINDOW, 0,
                                 seed=1000 * seed + i)
                if rng.random() < 0.2:
                    x = inject_fault(x, channel=2)
                body = {"windows": windows_json(x, int(rng.integers(0, 240)))}
                codes.append(api.call("POST", "/v1/lines/k/windows", json=body).status_code)
            return codes

        def operate() -> list[str]:
            done = []
            for name in operator.rng.choice(["discard", "set_limit", "retrain", "tick",
                                             "activate", "tick"], size=30):
                try:
                    done.append(getattr(operator, str(name))())
                except AssertionError as exc:  # an expectation read before a racing change
                    done.append(f"{name}: {exc}")
            return done

        with ThreadPoolExecutor(5) as pool:
            gateways = [pool.submit(gateway, seed) for seed in range(4)]
            steps = pool.submit(operate).result()
            codes = [c for g in gateways for c in g.result()]
        assert codes == [200] * len(codes)
        assert not [s for s in steps if "500" in s or "Internal" in s], steps
        check_promises(api, "k")
        assert rows(api, ModelVersion, "k") >= 1, steps


def test_a_line_deleted_while_gateways_post_answers_404_never_500(db_url: str) -> None:
    """A line decommissioned (and set up again) while its gateways still post: each batch is
    either scored (200) or told the line is gone (404), whichever its request met, never a
    500 from a line half read."""
    with TestClient(create_app(settings_for(db_url, train_max_epochs=2))) as client:
        api = Api(client, {})
        operator = Operations(api, np.random.default_rng(3), "k")
        api.call("POST", "/v1/lines/k/windows", json={"windows": windows_json(
            make_windows(MIN_WINDOWS, len(CHANNELS), WINDOW, 0, seed=1))})
        api.tick()

        def gateway(seed: int) -> list[int]:
            rng = np.random.default_rng(seed)
            return [api.call("POST", "/v1/lines/k/windows", json={
                "learn": bool(rng.random() < 0.5), "windows": windows_json(make_windows(
                    int(rng.integers(1, 9)), len(CHANNELS), WINDOW, 0, seed=100 * seed + i))}
            ).status_code for i in range(40)]

        def operate() -> None:
            for i in range(15):
                assert api.call("DELETE", "/v1/lines/k").status_code == 204
                assert api.call("PUT", "/v1/lines/k", json=operator.config).status_code == 201
                api.call("POST", "/v1/lines/k/windows", json={"windows": windows_json(
                    make_windows(MIN_WINDOWS, len(CHANNELS), WINDOW, 0, seed=i))})
                api.tick()

        def retrain() -> list[str]:  # a second operator, asking for retrains meanwhile
            answers = []
            for _ in range(40):
                r = api.call("POST", "/v1/lines/k/retrain")
                code = r.json()["error"]["code"] if r.status_code >= 400 else ""
                if code == "job_in_progress":  # names the job it is waiting on
                    assert r.json()["error"]["details"]["job_id"], r.text
                answers.append(f"{r.status_code} {code}".strip())
            return answers

        def view() -> set[str]:  # a dashboard, meanwhile
            seen = set()
            for i in range(60):
                url = ["/v1/lines", "/v1/lines/k", "/v1/lines/k/models",
                       "/v1/lines/k/anomalies", "/metrics"][i % 5]
                r = api.call("GET", url, key=viewer)
                code = r.json()["error"]["code"] if r.status_code >= 400 else ""
                seen.add(f"{url.replace('/v1/lines', '') or '/'} {r.status_code} {code}".strip())
            return seen

        viewer = api.new_key("viewer")
        with ThreadPoolExecutor(6) as pool:
            gateways = [pool.submit(gateway, seed) for seed in range(3)]
            retrains, views = pool.submit(retrain), pool.submit(view)
            pool.submit(operate).result()
            codes = [c for g in gateways for c in g.result()]
        assert set(codes) <= {200, 404}, sorted(set(codes))
        assert 200 in codes
        assert set(retrains.result()) <= {"202", "404 line_not_found", "409 job_in_progress",
                                          "409 not_enough_windows"}, retrains.result()
        assert views.result() <= {"/ 200", "/metrics 200", *(
            f"/k{path} {answer}" for path in ("", "/models", "/anomalies")
            for answer in ("200", "404 line_not_found"))}, views.result()
        check_promises(api, "k")
