"""The training-job queue, kept in the database so that many replicas can share it.

Ownership is a lease: a claimer sets lease_owner and lease_expires_at, extends them by heartbeat,
and may only finish the job while it still owns it (fencing). A partial unique index allows one
open (queued or running) job per line.
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import audit
from app.db import db_now, get_for_update, take_sqlite_writer, utcnow
from app.errors import ApiError, not_found
from app.tables import Line, TrainingJob

OPEN = ("queued", "running")


class LeaseLost(Exception):
    """This process no longer owns the job: another replica reaped or took it."""


def open_job(session: Session, line_id: str) -> TrainingJob | None:
    return session.scalar(select(TrainingJob).where(
        TrainingJob.line_id == line_id, TrainingJob.status.in_(OPEN)))


def enqueue(
    session: Session, *, line_id: str, trigger: str, new_regime: bool = False,
    reason: str | None = None,
) -> TrainingJob:
    """Queue a job and commit; raises 409 job_in_progress when the line has one open."""
    job = TrainingJob(id=str(uuid.uuid4()), line_id=line_id, trigger=trigger, status="queued",
                      new_regime=new_regime, reason=reason, metrics={})
    session.add(job)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        existing = open_job(session, line_id)
        raise ApiError(409, "job_in_progress",
                       f"line {line_id!r} already has a training job queued or running",
                       {"job_id": existing.id if existing else None}) from None
    return job


def claim(session: Session, *, owner: str, lease_s: float, limit: int = 1) -> list[str]:
    """Atomically take up to `limit` queued jobs. SKIP LOCKED lets replicas claim in parallel
    on PostgreSQL; it compiles away on SQLite, where the status guard still holds."""
    now = db_now(session)
    pick = (select(TrainingJob.id).where(TrainingJob.status == "queued")
            .order_by(TrainingJob.created_at).limit(limit).with_for_update(skip_locked=True))
    stmt = (update(TrainingJob)
            .where(TrainingJob.id.in_(pick.scalar_subquery()), TrainingJob.status == "queued")
            .values(status="running", lease_owner=owner, started_at=now,
                    lease_expires_at=now + timedelta(seconds=lease_s),
                    attempts=TrainingJob.attempts + 1)
            .returning(TrainingJob.id))
    ids = list(session.scalars(stmt))
    session.commit()
    return ids


def heartbeat(session: Session, *, job_id: str, owner: str, lease_s: float,
              metrics: dict[str, Any] | None = None) -> bool:
    """Extend the lease (and write the job's progress); True once an operator asked the job
    to stop, which is how the replica running it learns, whichever replica was asked."""
    values: dict[str, Any] = {"lease_expires_at": db_now(session) + timedelta(seconds=lease_s)}
    if metrics is not None:
        values["metrics"] = metrics
    row = session.execute(update(TrainingJob).where(
        TrainingJob.id == job_id, TrainingJob.lease_owner == owner,
        TrainingJob.status == "running").values(**values)
        .returning(TrainingJob.cancel_requested_at)).first()
    session.commit()
    if row is None:
        raise LeaseLost(job_id)
    return row[0] is not None


def finish(session: Session, *, job_id: str, owner: str, status: str, **values: Any) -> None:
    """Close the job inside the caller's transaction; LeaseLost if it is no longer ours."""
    res = session.execute(update(TrainingJob).where(
        TrainingJob.id == job_id, TrainingJob.lease_owner == owner,
        TrainingJob.status == "running").values(status=status, finished_at=utcnow(),
                                                lease_expires_at=None, **values))
    if res.rowcount == 0:  # type: ignore[attr-defined]
        raise LeaseLost(job_id)


def requeue(session: Session, *, job_id: str, owner: str) -> None:
    """Hand a job this process stopped back to the queue, its attempt not counted: the next
    replica or restart to claim it starts it afresh (or close it, if an operator cancelled it
    meanwhile). LeaseLost if it is no longer ours."""
    job = get_for_update(session, TrainingJob, job_id)
    if job is None or job.lease_owner != owner or job.status != "running":
        raise LeaseLost(job_id)
    if not _release(job, utcnow()):
        job.status, job.started_at, job.attempts = "queued", None, job.attempts - 1


def _release(job: TrainingJob, now: datetime) -> bool:
    """A running job whose run ended without a result (stopped, or its owner gone): its lease
    released and, if an operator asked to cancel it, closed as cancelled (True) rather than
    run again. Otherwise the caller decides (requeue or fail)."""
    job.lease_owner = job.lease_expires_at = None
    if job.cancel_requested_at is None:
        return False
    job.status, job.finished_at = "cancelled", now
    return True


def cancel(session: Session, *, job_id: str, actor: str, reason: str | None) -> TrainingJob:
    """An operator's cancel, committed: a queued job is cancelled at once; a running one is
    asked to stop, and the replica running it stops it at its next epoch, within a few seconds
    (app/trainer.py), with no new version. 409 job_finished once it has ended."""
    now, note = utcnow(), f"cancelled by {actor}" + (f": {reason}" if reason else "")
    mine = TrainingJob.id == job_id
    for status, values in (("queued", {"status": "cancelled", "finished_at": now}),
                           ("running", {})):
        res = session.execute(update(TrainingJob).where(mine, TrainingJob.status == status)
                              .values(cancel_requested_at=now, error=note, **values))
        if res.rowcount:  # type: ignore[attr-defined]
            break
    else:
        job = session.get(TrainingJob, job_id)
        if job is None:
            raise not_found("job", job_id)
        raise ApiError(409, "job_finished", f"job {job_id!r} has already ended "
                       f"({job.status}); there is nothing to cancel", {"status": job.status})
    job = session.get_one(TrainingJob, job_id, populate_existing=True)
    audit.record(session, actor=actor, action="job.cancel", line_id=job.line_id,
                 job_id=job_id, was=status, reason=reason)
    session.commit()
    return job


def reap(session: Session, *, max_attempts: int) -> int:
    """Requeue running jobs whose lease expired (their owner died), or fail them after
    max_attempts, or close them as cancelled if an operator asked. Returns how many."""
    now = db_now(session)
    expired = _lock_running(session, TrainingJob.lease_expires_at < now)
    for job in expired:
        if _release(job, now):  # its owner died before it could stop it
            continue
        if job.attempts >= max_attempts:
            job.status, job.finished_at = "failed", now
            job.error = f"the trainer stopped responding {job.attempts} times; retry the job"
        else:
            job.status = "queued"
    session.commit()
    return len(expired)


def fail_interrupted(session: Session, *, instance: str) -> int:
    """At start-up: jobs an earlier life of this process left running died with it."""
    host = instance.rpartition(":")[0]
    owners = [TrainingJob.lease_owner == instance]
    if host:
        owners.append(TrainingJob.lease_owner.startswith(f"{host}:"))
    rows = [job for job in _lock_running(session, or_(*owners))
            if _earlier_life(job.lease_owner or "", instance)]
    now = utcnow()
    for job in rows:
        if _release(job, now):
            continue
        job.status, job.finished_at = "failed", now
        job.error = "interrupted by a restart of the service; the previous model kept serving"
    session.commit()
    return len(rows)


def _lock_running(session: Session, *where: ColumnElement[bool]) -> list[TrainingJob]:
    """Running jobs, locked until the transaction ends. Unlocked, two replicas reaping at once
    both read a job; one requeues it, a third claims it, and the other's late write hands the
    claimed job back to the queue, its training lost. A row another replica holds is its own."""
    take_sqlite_writer(session)
    return list(session.scalars(
        select(TrainingJob).where(TrainingJob.status == "running", *where)
        .with_for_update(skip_locked=True).execution_options(populate_existing=True)))


def _earlier_life(owner: str, instance: str) -> bool:
    """The owner was this process before it restarted: its own name (one set per replica, or
    host:pid where a container's process gets the same pid each start), or a process of this
    host that is no longer alive. A sibling process's jobs stay its own; a pid reused since is
    left to the reaper, which takes the job once its lease runs out."""
    if owner == instance:
        return True
    host, _, pid = owner.rpartition(":")
    if not host or host != instance.rpartition(":")[0] or not pid.isdigit():
        return False
    return not _alive(int(pid))


def _alive(pid: int) -> bool:
    if os.name != "posix":  # no harmless probe there: the reaper handles it
        return True
    try:
        os.kill(pid, 0)  # signal 0: delivers nothing, only checks the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def request_retrain(session: Session, *, line: Line, new_regime: bool, reason: str | None,
                    actor: str) -> TrainingJob:
    """Operator-triggered job: 409 when one is open or the buffer holds too few windows."""
    existing = open_job(session, line.id)
    if existing is not None:
        raise ApiError(409, "job_in_progress",
                       f"line {line.id!r} already has a training job {existing.status}",
                       {"job_id": existing.id})
    have, need = line.buffer_windows, line.min_windows
    if have < need:
        raise ApiError(409, "not_enough_windows",
                       f"the fresh buffer holds {have} windows; training needs {need}. "
                       "Post more normal windows with learn=true, or lower min_windows",
                       {"windows": have, "needed": need})
    audit.record(session, actor=actor, action="line.retrain", line_id=line.id,
                 new_regime=new_regime, reason=reason)
    return enqueue(session, line_id=line.id, trigger="operator", new_regime=new_regime,
                   reason=reason)
