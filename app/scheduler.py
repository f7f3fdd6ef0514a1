"""APScheduler gives time, the database gives ownership: one `tick` every few seconds checks
this process still holds its instance name, enqueues due lines, reaps dead leases, claims
queued jobs for this process's runner and forgets batch answers kept past their memory."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app import batches, jobs
from app.db import DB_DOWN, get_for_update, utcnow
from app.errors import DB_WARNING_S, ApiError
from app.instance import InstanceName
from app.logs import EveryFewSeconds
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
    skip = busy | recent_fail
    due = [line.id for line in s.scalars(select(Line))
           if line.id not in skip and _trigger(line, now)]
    queued = []
    for line_id in due:
        # Locked as an operator's retrain locks it: whichever comes second sees the other's
        # job, and the line is not deleted under the insert.
        line = get_for_update(s, Line, line_id)
        trigger = _trigger(line, now) if line is not None else None
        if trigger is None:  # deleted, or trained, meanwhile
            s.rollback()
            continue
        try:
            queued.append(jobs.enqueue(s, line_id=line_id, trigger=trigger).id)
        except ApiError:  # an operator or another replica queued it first
            continue
    return queued


def _trigger(line: Line, now: datetime) -> str | None:
    """Why the line should train now: its first model, or its schedule; None if not yet."""
    if line.buffer_windows < line.min_windows:
        return None
    if line.active_version is None:
        return "warm_up"
    if line.last_trained_at is None or (
            line.last_trained_at + timedelta(seconds=line.retrain_interval_s) <= now):
        return "schedule"
    return None


class Scheduler:
    def __init__(self, *, sessions: sessionmaker[Session], settings: Settings,
                 runner: JobRunner, instance: InstanceName) -> None:
        self.sessions, self.settings, self.runner = sessions, settings, runner
        self.instance = instance
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lifeline-job")
        self._running: set[Future[None]] = set()
        self._lock = threading.Lock()
        self.bg = BackgroundScheduler(timezone=UTC)
        self._outage = EveryFewSeconds(log, DB_WARNING_S)

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
        except DB_DOWN as exc:  # an outage: no traceback each tick, it is not the code's fault
            self._outage.warn("scheduler tick skipped, the database did not answer: %s", exc)
        except Exception:  # a bad tick must not kill the schedule
            log.exception("scheduler tick failed")

    def tick(self) -> list[Future[None]]:
        self.instance.hold()  # a clash of names is said again until it ends (app/instance.py)
        with self.sessions() as s:
            enqueue_due(s)
            jobs.reap(s, max_attempts=self.settings.job_max_attempts)
            batches.forget_before(s, utcnow() - timedelta(seconds=self.settings.batch_memory_s))
            with self._lock:
                self._running = {f for f in self._running if not f.done()}
                free = 1 - len(self._running)
            ids = jobs.claim(s, owner=self.runner.owner, lease_s=self.settings.job_lease_s,
                             limit=free) if free > 0 else []
        futures = [self.pool.submit(self.runner.run, job_id) for job_id in ids]
        for fut in futures:
            fut.add_done_callback(_report_escaped)
        with self._lock:
            self._running.update(futures)
        return futures


def _report_escaped(fut: Future[None]) -> None:
    """A run that raised (the database gone as the job started or closed) left its job
    running; nothing else would say so. The reaper queues it again once its lease runs out."""
    if not fut.cancelled() and (exc := fut.exception()) is not None:
        log.error("a training job's run ended in an error; the job stays running until its "
                  "lease runs out, then goes back to the queue", exc_info=exc)
