"""The database job queue under contention and failure."""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select, update

import app.db
from app import buffer, jobs
from app.db import make_engine, make_sessionmaker, utcnow
from app.errors import ApiError
from app.main import create_app
from app.tables import BufferWindow, Line, TrainingJob
from models.synthetic import make_windows
from tests.app.conftest import CHANNELS, WINDOW, Api, settings_for, windows_json


def _lines(url: str, n: int):  # type: ignore[no-untyped-def]
    sessions = make_sessionmaker(make_engine(url))
    with sessions() as s:
        for i in range(n):
            s.add(Line(id=f"l{i}", channels=["a"], window=8, retrain_interval_s=60,
                       min_windows=20, promotion="auto", target_false_alarm_rate=0.01,
                       buffer_limit=100, active_version=None, last_trained_at=None))
        s.commit()
    return sessions


def test_concurrent_claimers_never_claim_a_job_twice(db_url: str) -> None:
    sessions = _lines(db_url, 12)
    with sessions() as s:
        for i in range(12):
            jobs.enqueue(s, line_id=f"l{i}", trigger="operator")
    claimed: list[list[str]] = []
    barrier = threading.Barrier(4)

    def worker(k: int) -> None:
        barrier.wait()
        got: list[str] = []
        for _ in range(6):
            with sessions() as s:
                got += jobs.claim(s, owner=f"w{k}", lease_s=60, limit=2)
        claimed.append(got)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = [j for got in claimed for j in got]
    assert len(flat) == len(set(flat)) == 12


def test_one_open_job_per_line(db_url: str) -> None:
    sessions = _lines(db_url, 1)
    with sessions() as s:
        first = jobs.enqueue(s, line_id="l0", trigger="operator")
        with pytest.raises(ApiError) as exc:
            jobs.enqueue(s, line_id="l0", trigger="schedule")
        assert exc.value.status == 409 and exc.value.details == {"job_id": first.id}


def test_expired_lease_blocks_the_old_owners_finish_and_requeues(db_url: str) -> None:
    sessions = _lines(db_url, 1)
    with sessions() as s:
        job = jobs.enqueue(s, line_id="l0", trigger="operator")
        assert jobs.claim(s, owner="old", lease_s=60) == [job.id]
        s.execute(update(TrainingJob).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
        s.commit()
        assert jobs.reap(s, max_attempts=3) == 1
        assert jobs.claim(s, owner="new", lease_s=60) == [job.id]
        with pytest.raises(jobs.LeaseLost):
            jobs.finish(s, job_id=job.id, owner="old", status="succeeded")
        s.rollback()
        jobs.finish(s, job_id=job.id, owner="new", status="succeeded")
        s.commit()
        assert s.get_one(TrainingJob, job.id).attempts == 2


def test_a_job_cancelled_while_its_owner_is_gone_is_not_run_again(db_url: str) -> None:
    """The replica running a job died after an operator asked it to stop: the reaper, and a
    restart of that replica, close it as cancelled instead of queueing it again."""
    sessions = _lines(db_url, 2)
    with sessions() as s:
        ids = [jobs.enqueue(s, line_id=f"l{i}", trigger="operator").id for i in range(2)]
        assert sorted(jobs.claim(s, owner="host-a:1", lease_s=60, limit=2)) == sorted(ids)
        for job_id in ids:
            assert jobs.cancel(s, job_id=job_id, actor="ops", reason=None).status == "running"
            assert jobs.heartbeat(s, job_id=job_id, owner="host-a:1", lease_s=60)  # tells it
        s.execute(update(TrainingJob).where(TrainingJob.id == ids[0]).values(
            lease_expires_at=utcnow() - timedelta(seconds=1)))
        s.commit()
        assert jobs.reap(s, max_attempts=3) == 1
        assert jobs.fail_interrupted(s, instance="host-a:1") == 1
        assert jobs.claim(s, owner="host-b:1", lease_s=60, limit=2) == []
        for job_id in ids:
            s.expire_all()
            job = s.get_one(TrainingJob, job_id)
            assert (job.status, job.error) == ("cancelled", "cancelled by ops"), job_id


def test_an_operator_cancels_a_queued_job_at_once_and_a_running_one_at_its_next_epoch(
        db_url: str) -> None:
    """Two replicas on one database: B is asked, A runs the job and stops it."""
    settings = settings_for(db_url, job_lease_s=0.6)  # A reads the cancel within 0.2 s
    with TestClient(create_app(settings)) as a, TestClient(create_app(settings)) as b:
        api_a, api_b = Api(a, {}), Api(b, {})
        _warm_line(api_a, "c")
        queued = api_a.call("POST", "/v1/lines/c/retrain").json()["job_id"]
        def age(status: str) -> float:  # any replica's /metrics: read from the database
            text = b.get("/metrics").text
            m = re.search(rf'lifeline_training_job_age_seconds\{{line="c",status="{status}"\}} '
                          r"(\S+)", text)
            return float(m.group(1)) if m else math.nan

        assert 0 <= age("queued") < 60
        assert api_b.call("POST", f"/v1/jobs/{queued}/cancel", key=None).status_code == 401
        r = api_b.call("POST", f"/v1/jobs/{queued}/cancel", json={"reason": "wrong data"})
        assert r.status_code == 200, r.text
        job = r.json()
        assert (job["status"], job["started_at"]) == ("cancelled", None)
        assert job["error"] == "cancelled by key:1:bootstrap: wrong data"  # who, and why
        assert 'lifeline_training_job_age_seconds{line="c"' not in b.get("/metrics").text
        again = api_b.call("POST", f"/v1/jobs/{queued}/cancel")
        assert again.status_code == 409 and again.json()["error"]["code"] == "job_finished"
        assert api_b.call("POST", "/v1/jobs/nope/cancel").status_code == 404

        api_a.tick()  # the warm-up job: version 1
        api_a.call("POST", "/v1/lines/c/windows",
                   json={"windows": windows_json(make_windows(300, 4, WINDOW, 0, seed=2))})
        with api_a.svc.sessions() as s:
            kept = set(s.scalars(select(BufferWindow.id)))
        running = api_a.call("POST", "/v1/lines/c/retrain", json={"new_regime": True}).json()[
            "job_id"]
        (fut,) = api_a.svc.scheduler.tick()
        while not api_a.call("GET", f"/v1/jobs/{running}").json()["metrics"].get("progress"):
            assert not fut.done(), "the job ended before it could be cancelled"
            time.sleep(0.05)
        assert 0 <= age("running") < 60
        r = api_b.call("POST", f"/v1/jobs/{running}/cancel")
        assert r.status_code == 202 and r.json()["status"] == "running"
        assert r.json()["cancel_requested_at"] is not None
        fut.result(timeout=120)
        job = api_b.call("GET", f"/v1/jobs/{running}").json()
        assert (job["status"], job["model_version"]) == ("cancelled", None), job
        assert job["metrics"]["progress"]["fit"] < 5  # stopped: a new regime trains 5 fits
        versions = api_b.call("GET", "/v1/lines/c/models").json()["models"]
        assert [v["version"] for v in versions] == [1]
        with api_a.svc.sessions() as s:
            assert set(s.scalars(select(BufferWindow.id))) == kept
        assert 'lifeline_retrains_total{line="c",result="cancelled"} 1.0' in a.get("/metrics").text


def _warm_line(api: Api, line: str = "crashy") -> None:
    api.call("PUT", f"/v1/lines/{line}", json={"channels": CHANNELS, "window": WINDOW,
                                              "min_windows": 100})
    api.call("POST", f"/v1/lines/{line}/windows",
             json={"windows": windows_json(make_windows(150, 4, WINDOW, 0, seed=1))})


def test_a_crashing_job_keeps_the_model_serving_and_the_buffer(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    _warm_line(api)
    api.tick()
    assert api.call("GET", "/v1/lines/crashy").json()["active_model"]["version"] == 1
    api.call("POST", "/v1/lines/crashy/windows",
             json={"windows": windows_json(make_windows(120, 4, WINDOW, 0, seed=2))})
    with api.svc.sessions() as s:
        before = set(s.scalars(select(BufferWindow.id)))

    def boom(*a: object, **k: object) -> None:
        raise RuntimeError("simulated trainer crash")

    monkeypatch.setattr("app.trainer.train_version", boom)
    job_id = api.call("POST", "/v1/lines/crashy/retrain").json()["job_id"]
    api.tick()
    job = api.call("GET", f"/v1/jobs/{job_id}").json()
    assert job["status"] == "failed" and "simulated trainer crash" in job["error"]
    scored = api.call("POST", "/v1/lines/crashy/windows", json={
        "learn": False, "windows": windows_json(make_windows(2, 4, WINDOW, 0, seed=3))}).json()
    assert scored["model_version"] == 1 and scored["results"][0]["status"] == "scored"
    with api.svc.sessions() as s:
        assert set(s.scalars(select(BufferWindow.id))) == before
    # the failed job no longer blocks a retry
    assert api.call("POST", "/v1/lines/crashy/retrain").status_code == 202
    text = api.client.get("/metrics").text
    assert 'lifeline_retrains_total{line="crashy",result="failed"} 1.0' in text


def _gone_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_restart_marks_running_jobs_failed(db_url: str) -> None:
    gone = f"host-a:{_gone_pid()}"
    with TestClient(create_app(settings_for(db_url, instance_name=gone))) as client:
        api = Api(client, {})
        _warm_line(api, "l")
        job_id = api.call("POST", "/v1/lines/l/retrain").json()["job_id"]
        with api.svc.sessions() as s:
            jobs.claim(s, owner=gone, lease_s=600)
    with TestClient(create_app(settings_for(db_url, instance_name="host-a:2"))) as client:
        job = Api(client, {}).call("GET", f"/v1/jobs/{job_id}").json()
    assert job["status"] == "failed" and "restart" in job["error"]


def test_a_shutdown_stops_a_running_retrain_and_requeues_it(db_url: str) -> None:
    """Stopping the service (a deploy, a restart) must not wait out a retrain, nor lose it:
    the job goes back to the queue, its attempt not counted, and the next start runs it.
    (The spawned process under a real SIGTERM: tests/app/test_shutdown.py.)"""
    settings = settings_for(db_url, train_max_epochs=400)
    with TestClient(create_app(settings)) as client:
        api = Api(client, {})
        _warm_line(api, "l")
        api.tick()
        api.call("POST", "/v1/lines/l/windows",
                 json={"windows": windows_json(make_windows(300, 4, WINDOW, 0, seed=2))})
        job_id = api.call("POST", "/v1/lines/l/retrain").json()["job_id"]
        with api.svc.sessions() as s:
            kept = set(s.scalars(select(BufferWindow.id)))
        api.svc.scheduler.tick()  # claims the job and starts it, not waiting; then shut down
    with TestClient(create_app(settings)) as client:
        api = Api(client, {})
        job = api.call("GET", f"/v1/jobs/{job_id}").json()
        assert (job["status"], job["attempts"], job["model_version"]) == ("queued", 0, None)
        assert api.call("GET", "/v1/lines/l").json()["active_model"]["version"] == 1
        with api.svc.sessions() as s:
            assert set(s.scalars(select(BufferWindow.id))) == kept
        api.tick()
        job = api.call("GET", f"/v1/jobs/{job_id}").json()
        assert (job["status"], job["attempts"], job["model_version"]) == ("succeeded", 1, 2)


def test_a_running_job_shows_which_fit_and_epoch_it_is_on(db_url: str) -> None:
    """A new regime also trains a model per calibration fold, minutes on a real buffer: while
    it runs, the job's metrics say how far it is (written within a few seconds of a change;
    here the lease is short, so they are written every 0.2 s)."""
    with TestClient(create_app(settings_for(db_url, job_lease_s=0.6))) as client:
        api = Api(client, {})
        _warm_line(api, "p")
        api.tick()
        until = (utcnow() + timedelta(hours=1)).isoformat()  # the operator vouches for them
        api.call("PUT", "/v1/lines/p", json={"channels": CHANNELS, "window": WINDOW,
                                              "min_windows": 100, "learn_flagged_until": until})
        api.call("POST", "/v1/lines/p/windows",
                 json={"windows": windows_json(make_windows(300, 4, WINDOW, 1, seed=2))})
        r = api.call("POST", "/v1/lines/p/retrain", json={"new_regime": True})
        job_id = r.json()["job_id"]
        (running,) = api.svc.scheduler.tick()
        seen: list[dict[str, float]] = []
        while not running.done():
            progress = api.call("GET", f"/v1/jobs/{job_id}").json()["metrics"].get("progress")
            if progress and progress not in seen:
                seen.append(progress)
            time.sleep(0.05)
        job = api.call("GET", f"/v1/jobs/{job_id}").json()
    assert job["status"] == "succeeded" and "progress" not in job["metrics"]
    fits = [p["fit"] for p in seen]
    assert len(seen) >= 3 and fits == sorted(fits) and fits[-1] >= 3, seen
    assert all(1 <= p["epoch"] <= 15 and p["val_loss"] is not None for p in seen), seen


def test_training_in_a_spawned_process(db_url: str) -> None:
    """The default executor: the job's model work runs in a separate process. The kernel's
    out-of-memory killer takes it mid-retrain: that job fails saying so, the line goes on
    scoring, and the next job starts a new process (the broken pool refused every later
    retrain, of every line, until a restart)."""
    if "postgres" in db_url:
        pytest.skip("the process executor is database-agnostic; once on SQLite is enough")
    with TestClient(create_app(settings_for(db_url, train_executor="process",
                                            train_max_epochs=400))) as client:
        api = Api(client, {})
        _warm_line(api, "proc")
        api.tick()
        line = api.call("GET", "/v1/lines/proc").json()
        assert line["state"] == "ready", api.call("GET", "/v1/lines/proc/jobs").json()
        api.call("POST", "/v1/lines/proc/windows",
                 json={"windows": windows_json(make_windows(300, 4, WINDOW, 0, seed=2))})
        doomed = api.call("POST", "/v1/lines/proc/retrain").json()["job_id"]
        running = api.svc.scheduler.tick()
        deadline = time.monotonic() + 60
        while api.svc.scheduler.runner.compute.progress() is None:  # training has begun
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(_training_process(), signal.SIGKILL)
        running[0].result(timeout=60)
        job = api.call("GET", f"/v1/jobs/{doomed}").json()
        assert (job["status"], job["model_version"]) == ("failed", None), job
        assert "training process died" in job["error"], job
        body = {"learn": False, "windows": windows_json(make_windows(1, 4, WINDOW, 0, seed=3))}
        assert api.call("POST", "/v1/lines/proc/windows", json=body).json()[
            "model_version"] == 1
        api.call("POST", "/v1/lines/proc/retrain")
        api.tick()
        assert api.call("GET", "/v1/lines/proc").json()["active_model"]["version"] == 2


def _training_process() -> int:
    """The pid of this process's spawned training worker (Linux: read from /proc)."""
    me = str(os.getpid())
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = stat.read_text().rsplit(")", 1)[1].split()[1]
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError):  # gone meanwhile
            continue
        if ppid == me and b"spawn_main" in cmdline:
            return int(stat.parent.name)
    raise AssertionError("no training process")


def test_two_instances_see_each_others_activation(db_url: str) -> None:
    with TestClient(create_app(settings_for(db_url))) as a, \
            TestClient(create_app(settings_for(db_url))) as b:
        api_a, api_b = Api(a, {}), Api(b, {})
        _warm_line(api_a, "shared")
        api_a.tick()
        api_a.call("POST", "/v1/lines/shared/windows",
                   json={"windows": windows_json(make_windows(120, 4, WINDOW, 0, seed=5))})
        api_a.call("POST", "/v1/lines/shared/retrain")
        body = {"learn": False, "windows": windows_json(make_windows(1, 4, WINDOW, 0, seed=6))}
        assert api_b.call("POST", "/v1/lines/shared/windows", json=body).json()[
            "model_version"] == 1
        api_a.tick()  # instance A trains and activates version 2
        assert api_b.call("POST", "/v1/lines/shared/windows", json=body).json()[
            "model_version"] == 2


def test_buffer_is_bounded_by_reservoir_sampling(api: Api) -> None:
    api.call("PUT", "/v1/lines/small", json={"channels": CHANNELS, "window": WINDOW,
                                            "min_windows": 20, "buffer_limit": 25})
    batches = [make_windows(30, 4, WINDOW, 0, seed=seed) for seed in range(4)]
    for x in batches:
        api.call("POST", "/v1/lines/small/windows", json={"windows": windows_json(x)})
    buf = api.call("GET", "/v1/lines/small").json()["buffer"]
    assert buf["windows"] == 25 and buf["dropped"] == 120 - 25
    with api.svc.sessions() as s:
        _, kept = buffer.snapshot(s, s.get_one(Line, "small"))
    came_from = {b for k in kept for b, x in enumerate(batches) if (x == k).all(axis=(1, 2)).any()}
    # A uniform sample of all 120, not the first 25: the last two batches' 60 windows all miss
    # the reservoir with probability prod(1 - 25 / k, k = 61..120) < 1e-7. (Row ids cannot
    # tell: SQLite reuses the largest rowid once its row is evicted.)
    assert len(kept) == 25 and came_from & {2, 3}


def test_a_rejected_student_never_serves(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    import models

    _warm_line(api, "gated")
    api.tick()
    api.call("POST", "/v1/lines/gated/windows",
             json={"windows": windows_json(make_windows(120, 4, WINDOW, 0, seed=7))})

    def reject(*a: object, **k: object) -> models.GateReport:
        return models.GateReport(False, ["forgot earlier regimes: test"], {"retention": 9.0})

    monkeypatch.setattr("models.gate", reject)
    job_id = api.call("POST", "/v1/lines/gated/retrain").json()["job_id"]
    api.tick()
    job = api.call("GET", f"/v1/jobs/{job_id}").json()
    assert job["status"] == "rejected" and "forgot earlier regimes" in job["error"]
    versions = api.call("GET", "/v1/lines/gated/models").json()["models"]
    assert versions[-1]["status"] == "rejected" and versions[-1]["reasons"]
    assert api.call("GET", "/v1/lines/gated").json()["active_model"]["version"] == 1
    r = api.call("POST", f"/v1/lines/gated/models/{versions[-1]['version']}/activate")
    assert r.status_code == 409 and r.json()["error"]["code"] == "version_rejected"
    text = api.client.get("/metrics").text
    assert 'lifeline_retrains_total{line="gated",result="rejected"} 1.0' in text


def test_a_reaper_holding_a_stale_read_never_undoes_a_fresh_claim(db_url: str) -> None:
    """Two replicas reap at once. B has read the expired job when A requeues it and C claims
    it; B's late write must not hand C's running job back to the queue (C's training would be
    thrown away at its next heartbeat), nor fail its tick."""
    sessions = _lines(db_url, 1)
    with sessions() as s:
        job_id = jobs.enqueue(s, line_id="l0", trigger="operator").id
        jobs.claim(s, owner="dead", lease_s=60)
        s.execute(update(TrainingJob).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
        s.commit()
    has_read, others_done = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def pause(*_: object) -> None:  # B has read the expired job and is about to write
        has_read.set()
        others_done.wait(2)

    def slow_reaper() -> None:
        try:
            with sessions() as s:
                event.listen(s, "before_flush", pause)
                jobs.reap(s, max_attempts=3)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    b = threading.Thread(target=slow_reaper)
    b.start()
    assert has_read.wait(10)
    with sessions() as s:
        jobs.reap(s, max_attempts=3)
        taken = jobs.claim(s, owner="c", lease_s=60)
    others_done.set()
    b.join()
    assert errors == []
    with sessions() as s:
        job = s.get_one(TrainingJob, job_id)
        if taken:  # C's claim stands
            assert (job.status, job.lease_owner) == ("running", "c")
        else:  # C found it locked: it is queued, for whoever claims next
            assert job.status == "queued"
            assert jobs.claim(s, owner="c", lease_s=60) == [job_id]


def test_a_start_fails_only_the_jobs_of_its_own_earlier_life(db_url: str) -> None:
    """Several processes may share a host (systemd units, a process manager restarting one):
    a start fails what its own earlier life left running (its name, or a process of this
    host that is gone), never a live sibling's job, nor another host's."""
    sibling = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    gone = _gone_pid()
    owners = {"l0": "replica-a", "l1": f"host-a:{gone}", "l2": f"host-a:{sibling.pid}",
              "l3": f"host-b:{gone}", "l4": "replica-b"}
    sessions = _lines(db_url, len(owners))
    try:
        with sessions() as s:
            for line_id, owner in owners.items():
                jobs.enqueue(s, line_id=line_id, trigger="operator")
                assert len(jobs.claim(s, owner=owner, lease_s=600)) == 1
            assert jobs.fail_interrupted(s, instance="replica-a") == 1
            assert jobs.fail_interrupted(s, instance=f"host-a:{os.getpid()}") == 1
            status = dict(s.execute(select(TrainingJob.line_id, TrainingJob.status)).all())
    finally:
        sibling.kill()
        sibling.wait()
    assert status == {"l0": "failed", "l1": "failed", "l2": "running", "l3": "running",
                      "l4": "running"}


@pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)],
                         indirect=True)
def test_a_replica_whose_clock_runs_fast_leaves_the_others_jobs_alone(
        db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Leases are set and judged by the database's clock: a replica an hour ahead of the
    others (a host whose time sync failed) would otherwise reap every job they run, and give
    its own jobs leases an hour too long. SQLite is embedded: one host, one clock."""
    sessions = _lines(db_url, 2)
    with sessions() as s:
        first = jobs.enqueue(s, line_id="l0", trigger="operator").id
        assert jobs.claim(s, owner="a", lease_s=60) == [first]
        second = jobs.enqueue(s, line_id="l1", trigger="operator").id
    fast = lambda: datetime.now(UTC) + timedelta(hours=1)  # noqa: E731
    monkeypatch.setattr(jobs, "utcnow", fast)
    monkeypatch.setattr(app.db, "utcnow", fast)
    with sessions() as s:
        assert jobs.reap(s, max_attempts=3) == 0
        assert jobs.claim(s, owner="fast", lease_s=60) == [second]
    monkeypatch.undo()
    with sessions() as s:
        assert not jobs.heartbeat(s, job_id=first, owner="a", lease_s=60)  # still a's
        lease = s.get_one(TrainingJob, second).lease_expires_at
        assert lease is not None
        assert timedelta(seconds=50) < lease - utcnow() < timedelta(seconds=70)
