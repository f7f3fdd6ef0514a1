"""`lifeline serve` stopped by SIGTERM (a deploy, `docker stop`, systemd) while a retrain runs
in its spawned training process: the real server, the real signal, the real child."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import select

from app.db import make_engine, make_sessionmaker
from app.tables import TrainingJob
from bench.server import KEY, npy_bytes, prepare
from models import TrainConfig, train_student
from models.synthetic import make_windows
from tests.app.conftest import free_port, wait_ready

C, T = 4, 16


def _group(pgid: int) -> list[str]:
    out = subprocess.run(["ps", "-o", "pid=,args=", "-g", str(pgid)], capture_output=True,
                         text=True).stdout
    return [line for line in out.splitlines() if line.strip()]


def test_sigterm_during_a_retrain_exits_at_once_leaves_no_process_and_requeues_the_job(
        tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'lifeline.db'}"
    first = train_student(make_windows(200, C, T, 0, seed=0),
                          cfg=TrainConfig(max_epochs=5, seed=0, calibration_folds=0)).detector
    prepare(url, first, ["l"], C, T)
    port = free_port()
    env = {**os.environ, "LIFELINE_DATABASE_URL": url, "LIFELINE_PORT": str(port),
           "LIFELINE_TICK_SECONDS": "1", "LIFELINE_TRAIN_EXECUTOR": "process",
           "LIFELINE_JOB_LEASE_S": "1.5"}  # progress written every half second
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "serve"], env=env,
                            start_new_session=True)  # its own group: every child it starts
    try:
        base, auth = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {KEY}"}
        wait_ready(base, proc)
        for seed in range(1, 5):
            httpx.post(f"{base}/v1/lines/l/windows?learn=true", timeout=60,
                       content=npy_bytes(make_windows(500, C, T, 0, seed=seed)),
                       headers={**auth, "Content-Type": "application/x-npy"}).raise_for_status()
        # a new regime trains its fold models too: many seconds at the default epochs
        job_id = httpx.post(f"{base}/v1/lines/l/retrain", json={"new_regime": True},
                            headers=auth).json()["job_id"]
        # mid-training: the job's progress, written by the trainer from what its process
        # shares, says an epoch has ended
        deadline = time.time() + 120
        while not httpx.get(f"{base}/v1/jobs/{job_id}", headers=auth).json()["metrics"].get(
                "progress"):
            assert time.time() < deadline, "the running job never reported its progress"
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        deadline = time.time() + 10  # children exit after their parent is gone
        while _group(proc.pid) and time.time() < deadline:
            time.sleep(0.2)
        assert _group(proc.pid) == [], "processes outlived the server"
    finally:
        if proc.poll() is None or _group(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
    with make_sessionmaker(make_engine(url))() as s:
        job = s.scalars(select(TrainingJob).where(TrainingJob.id == job_id)).one()
        assert (job.status, job.attempts, job.model_version) == ("queued", 0, None), job.error

