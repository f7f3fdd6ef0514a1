"""Anomaly events: scored windows grouped into them, and as operators see them: listed,
acknowledged, and judged (a real fault or a false alarm). A verdict is the plant's own record
of how the model is doing; it never reaches training or a threshold, which stay label-free."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import audit
from app.db import get_for_update, utcnow
from app.errors import not_found
from app.tables import AnomalyEvent, Line

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


def went_silent(line: Line, now: datetime) -> bool:
    """Whether the line had gone silent (no window for its silent_after_s: LifelineLineSilent
    fired). Its next window then closes the open event, so an anomaly after a stop or a
    gateway's outage is a new event, not the tail of one acknowledged hours ago. The stamp lags
    at most SEEN_EVERY, below silent_after_s's least 60 s: a line that kept posting never
    looks silent."""
    since = line.last_window_at
    return since is not None and now - since >= timedelta(seconds=line.silent_after_s)


def record_events(session: Session, line: Line, starts: list[datetime | None],
                   results: list[dict[str, Any]], version: int, now: datetime) -> int:
    """Anomalous windows extend one event until a window scored normal starts event_gap_s or
    more after the event's last anomalous one: near its threshold a fault's windows cross it on
    and off, and on SKAB's rig a caught fault was 4.3 events with no gap, 1.2 with 60 s
    (bench/README.md, quality section, session 26). A window without a start counts as now;
    the number of events opened."""
    gap = timedelta(seconds=line.event_gap_s)
    opened = 0
    for r in results:
        if r["status"] != "scored":
            continue
        at = starts[r["index"]] or now
        if not r["anomaly"]:
            if line.open_event_id is None:
                continue
            ev = session.get(AnomalyEvent, line.open_event_id)
            if closes(ev.end if ev else None, at, gap):
                line.open_event_id = None
            continue
        # a stuck channel leads (the score's shares cannot name it, models/stuck.py), then
        # the channels past their own limit, then the others, each by share
        by_share = sorted(r["contributions"], key=r["contributions"].get, reverse=True)
        named = [*r["stuck_channels"], *(c for c in by_share if c in r["alarm_channels"]
                                         and c not in r["stuck_channels"])]
        top = [*named, *(c for c in by_share if c not in named)][:3]
        ev = session.get(AnomalyEvent, line.open_event_id) if line.open_event_id else None
        if ev is None:
            ev = AnomalyEvent(line_id=line.id, start=at, end=at, windows=0, max_score=r["score"],
                              max_score_ratio=r["score_ratio"], top_channels=top,
                              model_version=version)
            session.add(ev)
            session.flush()
            line.open_event_id = ev.id
            opened += 1
        ev.end, ev.windows = max(ev.end, at), ev.windows + 1
        r["event_id"] = ev.id
        if r["score"] >= ev.max_score:
            ev.max_score, ev.max_score_ratio, ev.top_channels = r["score"], r["score_ratio"], top
    return opened


def closes(end: datetime | None, at: datetime, gap: timedelta) -> bool:
    """Whether a window scored normal, starting at `at`, closes the open event that ended at
    `end` (None: the event is gone)."""
    return end is None or at - end >= gap
