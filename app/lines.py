"""Production lines: create, update, describe."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial
from typing import Any

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import audit, buffer, jobs, registry
from app.db import get_for_update, utcnow, wipe_on_commit
from app.errors import ApiError, not_found
from app.schemas.lines import LineConfig
from app.tables import Line, ModelVersion


def vouched(line: Line, now: datetime) -> bool:
    """Whether an operator vouches for the line's data now: flagged windows join the buffer."""
    return line.learn_flagged_until is not None and now < line.learn_flagged_until


def get_line(session: Session, line_id: str, *, lock: bool = False) -> Line:
    """The line, or a 404; with `lock`, its row locked and its attributes read afresh."""
    line = get_for_update(session, Line, line_id) if lock else session.get(Line, line_id)
    if line is None:
        raise not_found("line", line_id)
    return line


def put_line(
    session: Session, *, line_id: str, cfg: LineConfig, default_buffer_limit: int,
    buffer_max_mb: float, actor: str, rng: np.random.Generator
) -> tuple[Line, bool]:
    """Create or update a line; the shape of a line that has a model is fixed (409). A lowered
    buffer_limit takes effect at once: an operator lowers it to free space.

    Two PUTs creating one line at once (a provisioning script run twice, a retry after a
    timeout) both find no row to lock on PostgreSQL: the second's insert fails, and it goes
    again as an update."""
    put = partial(_put_line, session, line_id=line_id, cfg=cfg,
                  default_buffer_limit=default_buffer_limit, buffer_max_mb=buffer_max_mb,
                  actor=actor, rng=rng)
    try:
        return put()
    except IntegrityError:
        session.rollback()
        return put()


def _put_line(
    session: Session, *, line_id: str, cfg: LineConfig, default_buffer_limit: int,
    buffer_max_mb: float, actor: str, rng: np.random.Generator
) -> tuple[Line, bool]:
    line = get_for_update(session, Line, line_id)
    values = cfg.model_dump()
    values["buffer_limit"] = _buffer_limit(cfg, default_buffer_limit, buffer_max_mb)
    _check_buffer_holds_a_training(values["min_windows"], values["buffer_limit"], buffer_max_mb)
    created = line is None
    if line is None:
        line = Line(id=line_id, active_version=None, **values)
        session.add(line)
    else:
        _check_shape_change(session, line, cfg)
        changed = {k: v for k, v in values.items() if getattr(line, k) != v}
        for key, value in changed.items():
            setattr(line, key, value)
        if changed:  # a provisioning script's repeated PUT changes nothing
            line.updated_at = utcnow()
    evicted = 0 if created else buffer.shrink(session, line, rng)
    audit.record(session, actor=actor, action="line.create" if created else "line.update",
                 line_id=line_id, config=cfg.model_dump(mode="json") | {
                     "buffer_limit": values["buffer_limit"]},
                 **({"buffer_evicted": evicted} if evicted else {}))
    session.commit()
    return line, created


def delete_line(session: Session, *, line_id: str, actor: str) -> None:
    """Decommission a line: it and all it holds (buffer, versions, jobs, events, batch answers)
    go in one transaction, by the database's cascades; the audit trail keeps who and when. A
    running job's replica finds the job gone at its next lease renewal and stops training
    (app/trainer.py)."""
    line = get_line(session, line_id, lock=True)
    running = jobs.open_job(session, line_id)
    versions = session.scalar(select(func.count()).where(ModelVersion.line_id == line_id))
    audit.record(session, actor=actor, action="line.delete", line_id=line_id,
                 buffer_windows=line.buffer_windows, versions=versions,
                 open_job=running.id if running else None)
    session.execute(delete(Line).where(Line.id == line_id))  # its buffer by the cascade
    wipe_on_commit(session)
    session.commit()


def discard_windows(session: Session, *, line_id: str, since: datetime | None,
                    until: datetime | None, reason: str | None, actor: str) -> int:
    """An operator's "do not learn these": buffered windows of a span the line did not run
    normally in although the model did not flag it (a slow fault, maintenance, a trial run).
    409 while a job trains on the buffer: cancel it first."""
    if since is not None and until is not None and since >= until:
        raise ApiError(422, "invalid_request", "since must be before until",
                       [{"field": "since", "problem": "must be before until"}])
    line = get_line(session, line_id, lock=True)
    deleted = buffer.discard(session, line, since, until)
    if deleted is None:
        session.rollback()
        job_id = job.id if (job := jobs.open_job(session, line_id)) else None
        raise ApiError(409, "job_in_progress",
                       f"a training job is running on line {line_id!r}'s buffer as it was; "
                       f"cancel it (POST /v1/jobs/{job_id}/cancel), then discard the windows "
                       "and retrain", {"job_id": job_id})
    audit.record(session, actor=actor, action="buffer.discard", line_id=line_id,
                 since=since.isoformat() if since else None,
                 until=until.isoformat() if until else None, deleted=deleted, reason=reason)
    session.commit()
    return deleted


def _buffer_limit(cfg: LineConfig, default: int, max_mb: float) -> int:
    """The line's bound in windows: as asked, or the service's default, within the megabytes
    a line's buffer may hold. The default shrinks to fit quietly (a 512-sensor line keeps
    2,048 windows of 64 steps in 256 MB); a bound asked for beyond it is refused."""
    window_bytes = 4 * len(cfg.channels) * cfg.window
    fits = max(1, int(max_mb * 2**20) // window_bytes)
    if cfg.buffer_limit is None:
        return min(default, fits)
    if cfg.buffer_limit > fits:
        problem = (f"{cfg.buffer_limit} windows of {cfg.window} x {len(cfg.channels)} values "
                   f"would hold {cfg.buffer_limit * window_bytes / 2**20:,.0f} MB; a line's "
                   f"buffer may hold {max_mb:g} MB (LIFELINE_BUFFER_MAX_MB), {fits} such "
                   "windows: lower buffer_limit, or raise the budget if the server has the "
                   "memory (a training job takes about ten times the buffer)")
        raise ApiError(422, "invalid_request", f"buffer_limit: {problem}",
                       [{"field": "buffer_limit", "problem": problem}])
    return cfg.buffer_limit


def _check_buffer_holds_a_training(min_windows: int, buffer_limit: int, max_mb: float) -> None:
    """A buffer bounded below min_windows never holds enough to train: such a line would stay
    warming up for ever, so it is refused when it is set (buffer_limit may be the default)."""
    if min_windows > buffer_limit:
        problem = (f"min_windows ({min_windows}) is more than the fresh buffer holds "
                   f"(buffer_limit {buffer_limit}), so the line could never train; lower "
                   f"min_windows or raise buffer_limit (a line's buffer may hold {max_mb:g} "
                   "MB, LIFELINE_BUFFER_MAX_MB: shorter windows or fewer channels fit more)")
        raise ApiError(422, "invalid_request", f"min_windows: {problem}",
                       [{"field": "min_windows", "problem": problem}])


def _check_shape_change(session: Session, line: Line, cfg: LineConfig) -> None:
    for field in ("shape_only_channels", "principal_axes"):
        if getattr(line, field) != getattr(cfg, field) and registry.list_versions(
                session, line.id):
            raise ApiError(409, "line_shape_locked",
                           f"{field} cannot change once the line has a model: its models and "
                           "their replay are scaled that way; create a new line (or delete "
                           "this one to reuse its name)",
                           {field: getattr(line, field)})
    if line.channels == cfg.channels and line.window == cfg.window:
        return
    if registry.list_versions(session, line.id):
        raise ApiError(409, "line_shape_locked",
                       "channels and window cannot change once the line has a model; "
                       "create a new line for the new sensor layout (or delete this one to "
                       "reuse its name)",
                       {"channels": line.channels, "window": line.window})
    if line.buffer_windows:
        raise ApiError(409, "line_shape_locked",
                       "channels and window cannot change while windows of the old shape are "
                       "buffered", {"channels": line.channels, "window": line.window})


def describe(session: Session, line: Line) -> dict[str, Any]:
    """The line as the contract shows it; a 404 if it was deleted since it was read."""
    out = describe_all(session, [line])
    if not out:
        raise not_found("line", line.id)
    return out[0]


def describe_all(session: Session, lines: list[Line]) -> list[dict[str, Any]]:
    """Each line as the contract shows it, in two queries however many there are. A line
    deleted since it was read is left out: its model went with it."""
    ids = [line.id for line in lines]
    active = {v.line_id: v for v in session.scalars(select(ModelVersion).where(
        ModelVersion.line_id.in_(ids), ModelVersion.status == "active"))}
    oldest = buffer.oldest(session, ids)
    return [_describe(line, active.get(line.id), oldest.get(line.id)) for line in lines
            if line.active_version is None or line.id in active]


def _describe(line: Line, active: ModelVersion | None, oldest: datetime | None
              ) -> dict[str, Any]:
    model = None if active is None else {
        "version": active.version, "threshold": active.threshold, "regimes": active.regimes,
        "created_at": active.created_at}
    nxt = None
    if line.last_trained_at is not None:
        nxt = line.last_trained_at + timedelta(seconds=line.retrain_interval_s)
    return {
        "line_id": line.id, "channels": line.channels, "window": line.window,
        "retrain_interval_s": line.retrain_interval_s, "min_windows": line.min_windows,
        "promotion": line.promotion, "target_false_alarm_rate": line.target_false_alarm_rate,
        "buffer_limit": line.buffer_limit, "learn_flagged_until": line.learn_flagged_until,
        "shape_only_channels": line.shape_only_channels, "principal_axes": line.principal_axes,
        "event_gap_s": line.event_gap_s, "silent_after_s": line.silent_after_s,
        "state": "ready" if model else "warming_up", "active_model": model,
        "buffer": _buffer_state(line, oldest), "last_window_at": line.last_window_at,
        "next_retrain_at": nxt, "created_at": line.created_at, "updated_at": line.updated_at,
    }


def buffer_state(session: Session, line: Line) -> dict[str, Any]:
    return _buffer_state(line, buffer.oldest(session, [line.id]).get(line.id))


def _buffer_state(line: Line, oldest: datetime | None) -> dict[str, Any]:
    return {"windows": line.buffer_windows, "oldest_at": oldest, "dropped": line.buffer_dropped}


def list_lines(session: Session) -> list[Line]:
    return list(session.scalars(select(Line).order_by(Line.id)))
