"""Production lines: create, update, describe."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import audit, buffer, registry
from app.errors import ApiError, not_found
from app.schemas.lines import LineConfig
from app.tables import Line


def vouched(line: Line, now: datetime) -> bool:
    """Whether an operator vouches for the line's data now: flagged windows join the buffer."""
    return line.learn_flagged_until is not None and now < line.learn_flagged_until


def get_line(session: Session, line_id: str) -> Line:
    line = session.get(Line, line_id)
    if line is None:
        raise not_found("line", line_id)
    return line


def put_line(
    session: Session, *, line_id: str, cfg: LineConfig, default_buffer_limit: int, actor: str
) -> tuple[Line, bool]:
    """Create or update a line; the shape of a line that has a model is fixed (409)."""
    line = session.get(Line, line_id, with_for_update=True)
    values = cfg.model_dump()
    values["buffer_limit"] = values["buffer_limit"] or default_buffer_limit
    _check_buffer_holds_a_training(values["min_windows"], values["buffer_limit"])
    created = line is None
    if line is None:
        line = Line(id=line_id, active_version=None, **values)
        session.add(line)
    else:
        _check_shape_change(session, line, cfg)
        for key, value in values.items():
            setattr(line, key, value)
    audit.record(session, actor=actor, action="line.create" if created else "line.update",
                 line_id=line_id, config=cfg.model_dump(mode="json") | {
                     "buffer_limit": values["buffer_limit"]})
    session.commit()
    return line, created


def _check_buffer_holds_a_training(min_windows: int, buffer_limit: int) -> None:
    """A buffer bounded below min_windows never holds enough to train: such a line would stay
    warming up for ever, so it is refused when it is set (buffer_limit may be the default)."""
    if min_windows > buffer_limit:
        problem = (f"min_windows ({min_windows}) is more than the fresh buffer holds "
                   f"(buffer_limit {buffer_limit}), so the line could never train; lower "
                   "min_windows or raise buffer_limit")
        raise ApiError(422, "invalid_request", f"min_windows: {problem}",
                       [{"field": "min_windows", "problem": problem}])


def _check_shape_change(session: Session, line: Line, cfg: LineConfig) -> None:
    for field in ("shape_only_channels", "principal_axes"):
        if getattr(line, field) != getattr(cfg, field) and registry.list_versions(
                session, line.id):
            raise ApiError(409, "line_shape_locked",
                           f"{field} cannot change once the line has a model: its models and "
                           "their replay are scaled that way; create a new line",
                           {field: getattr(line, field)})
    if line.channels == cfg.channels and line.window == cfg.window:
        return
    if registry.list_versions(session, line.id):
        raise ApiError(409, "line_shape_locked",
                       "channels and window cannot change once the line has a model; "
                       "create a new line for the new sensor layout",
                       {"channels": line.channels, "window": line.window})
    if buffer.count(session, line.id):
        raise ApiError(409, "line_shape_locked",
                       "channels and window cannot change while windows of the old shape are "
                       "buffered", {"channels": line.channels, "window": line.window})


def describe(session: Session, line: Line) -> dict[str, Any]:
    active = None
    if line.active_version is not None:
        v = registry.get_version(session, line.id, line.active_version)
        active = {"version": v.version, "threshold": v.threshold, "regimes": v.regimes,
                  "created_at": v.created_at}
    nxt = None
    if line.last_trained_at is not None:
        nxt = line.last_trained_at + timedelta(seconds=line.retrain_interval_s)
    return {
        "line_id": line.id, "channels": line.channels, "window": line.window,
        "retrain_interval_s": line.retrain_interval_s, "min_windows": line.min_windows,
        "promotion": line.promotion, "target_false_alarm_rate": line.target_false_alarm_rate,
        "buffer_limit": line.buffer_limit, "learn_flagged_until": line.learn_flagged_until,
        "shape_only_channels": line.shape_only_channels, "principal_axes": line.principal_axes,
        "state": "ready" if active else "warming_up", "active_model": active,
        "buffer": {"windows": buffer.count(session, line.id),
                   "oldest_at": buffer.oldest(session, line.id), "dropped": line.buffer_dropped},
        "next_retrain_at": nxt, "created_at": line.created_at, "updated_at": line.updated_at,
    }


def list_lines(session: Session) -> list[Line]:
    return list(session.scalars(select(Line).order_by(Line.id)))
