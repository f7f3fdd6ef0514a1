"""APScheduler gives time, the database gives ownership: one `tick` every few seconds enqueues
due lines, reaps dead leases and claims queued jobs for this process's runner."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app import jobs
from app.db import utcnow
from app.errors import ApiError
from app.settings import Settings
from app.tables import Line, TrainingJob
from app.trainer import JobRunner

log = logging.getLogger(__name__)
# After a failed or rejected job, a line waits this long before the schedule tries again.
RETRY_BACKOFF = timedelta(minutes=10)


def enqueue_due(s: Session) -> list[str]:
    """Queue warm-up jobs for lines that buffered min_windows, scheduled ones when due."""
    now = utcnow()
    busy = set(s.scalars(select(TrainingJob.line_id).where(TrainingJob.status.in_(jobs.OPEN))))
    recent_fail = set(s.scalars(select(TrainingJob.line_id).where(
        TrainingJob.status.in_(("failed", "rejected")),
        TrainingJob.finished_at > now - RETRY_BACKOFF)))
    queued = []
    for line in s.scalars(select(Line)):
        if line.id in busy or line.id in recent_fail or line.buffer_windows < line.min_windows:
            continue
        due = line.last_trained_at is None or (
            line.last_trained_at + timedelta(seconds=line.retrain_interval_s) <= now)
        if line.active_version is None or due:
            trigger = "warm_up" if line.active_version is None else "schedule"
            try:
                queued.append(jobs.enqueue(s, line_id=line.id, trigger=trigger).id)
            except ApiError:  # another replica queued it first
                continue
    return queued


class Scheduler:
    def __init__(self, *, sessions: sessionmaker[Session], settings: Settings,
                 runner: JobRunner) -> None:
        self.sessions, self.settings, self.runner = sessions, settings, runner
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lifeline-job")
        self._running: set[Future[None]] = set()
        self._lock = threading.Lock()
        self.bg = BackgroundScheduler(timezone=UTC)

    def start(self) -> None:
        self.bg.add_job(self._safe_tick, "interval", seconds=self.settings.tick_seconds,
                        max_instances=1, coalesce=True, next_run_time=utcnow())
        self.bg.start()

    @property
    def running(self) -> bool:
        return bool(self.bg.running)

    def shutdown(self) -> None:
        """Waits for a tick in flight (it claims and submits, never waits on a job), and runs
        every job already claimed: a claimed job not run stays `running` with no one to run
        it, and fails at the next start. Once Compute.interrupt() is called, as the app does
        first, each of them goes back to the queue within an epoch."""
        if self.bg.running:
            self.bg.shutdown(wait=True)
        self.pool.shutdown(wait=True)

    def _safe_tick(self) -> None:
        try:
            self.tick()
        except Exception:  # a bad tick must not kill the schedule
            log.exception("scheduler tick failed")

    def tick(self) -> list[Future[None]]:
        with self.sessions() as s:
            enqueue_due(s)
            jobs.reap(s, max_attempts=self.settings.job_max_attempts)
            with self._lock:
                self._running = {f for f in self._running if not f.done()}
                free = 1 - len(self._running)
            ids = jobs.claim(s, owner=self.runner.owner, lease_s=self.settings.job_lease_s,
                             limit=free) if free > 0 else []
        futures = [self.pool.submit(self.runner.run, job_id) for job_id in ids]
        with self._lock:
            self._running.update(futures)
        return futures
