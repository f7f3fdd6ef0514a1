"""Anomaly events as operators see them: listed, acknowledged, and judged (a real fault or a
false alarm). A verdict is the plant's own record of how the model is doing; it never reaches
training or a threshold, which stay label-free."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import audit
from app.db import get_for_update, utcnow
from app.errors import not_found
from app.tables import AnomalyEvent

Verdict = Literal["fault", "false_alarm"]


def event_out(e: AnomalyEvent, *, open_event_id: int | None) -> dict[str, Any]:
    """`open_event_id`: the line's open event, the one its next anomalous window extends."""
    return {"id": e.id, "start": e.start, "end": e.end, "open": e.id == open_event_id,
            "windows": e.windows,
            "max_score": e.max_score, "max_score_ratio": e.max_score_ratio,
            "top_channels": e.top_channels, "model_version": e.model_version,
            "acknowledged_at": e.acknowledged_at, "acknowledged_by": e.acknowledged_by,
            "verdict": e.verdict, "note": e.note}


def list_events(session: Session, *, line_id: str, since: datetime | None,
                acknowledged: bool | None, limit: int) -> list[AnomalyEvent]:
    """The line's events, newest first; `since` keeps those that ended at or after it."""
    q = select(AnomalyEvent).where(AnomalyEvent.line_id == line_id)
    if since is not None:
        q = q.where(AnomalyEvent.end >= since)
    if acknowledged is not None:
        seen = AnomalyEvent.acknowledged_at.is_not(None)
        q = q.where(seen if acknowledged else ~seen)
    return list(session.scalars(q.order_by(AnomalyEvent.start.desc()).limit(limit)))


def acknowledge(session: Session, *, line_id: str, event_id: int, verdict: Verdict | None,
                note: str | None, actor: str) -> AnomalyEvent:
    """Mark an event seen, with the operator's verdict if given. Acknowledging again (a
    verdict reached later, after the maintenance report) replaces the verdict and note."""
    event = get_for_update(session, AnomalyEvent, event_id)
    if event is None or event.line_id != line_id:
        raise not_found("anomaly", event_id)
    event.acknowledged_at, event.acknowledged_by = utcnow(), actor
    event.verdict, event.note = verdict, note
    audit.record(session, actor=actor, action="anomaly.acknowledge", line_id=line_id,
                 event_id=event_id, verdict=verdict, note=note)
    session.commit()
    return event
