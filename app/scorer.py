"""Score a batch of windows for a line: check it against the line (app/windows.py), score with
the cached model, group anomalies into events (app/anomalies.py), offer normal windows to the
fresh buffer, answer. While the database does not answer, score from memory and answer in the
503 (a provisional answer)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import models
from app import anomalies, batches, buffer
from app.db import DB_DOWN, utcnow
from app.errors import ApiError, DatabaseDown, not_found
from app.lines import get_line, vouched
from app.metrics import Metrics
from app.model_cache import ModelCache
from app.settings import Settings
from app.tables import AnomalyEvent, Line, ModelVersion
from app.windows import Batch, Shape

# How far behind a line's last_window_at may fall: a call that would otherwise write nothing
# stamps it only when it is older than this, so a read-only gateway costs one write per line
# every 30 s, not one per call (a line's silent_after_s is 60 s at least).
SEEN_EVERY = timedelta(seconds=30)


@dataclass(frozen=True)
class LineView:
    """A line as this process's last scoring call read it, with its active model: enough to
    score the line's windows while the database does not answer."""

    id: str
    window: int
    channels: list[str]
    model_id: int  # ModelVersion.id, the model cache's key
    version: int
    threshold: float


@dataclass
class ScoringContext:
    cache: ModelCache
    settings: Settings
    metrics: Metrics
    rng: np.random.Generator
    views: dict[str, LineView] = field(default_factory=dict)  # by line id, one per line


def score_batch(session: Session, *, line_id: str, parse: Callable[[Shape], Batch],
                size: int, batch_id: str | None, ctx: ScoringContext) -> dict[str, Any]:
    """`parse` turns the body into a Batch once the line is known (its shape checks need it);
    `size` and `batch_id` are known before parsing, so a replay is answered unparsed. When the
    database does not answer, DatabaseDown carries the batch's scores all the same, stored
    nowhere: the line's alarms reach its gateway through an outage."""
    try:
        line = get_line(session, line_id)
        if batch_id is not None and (seen := batches.recall(session, line_id, batch_id)):
            return seen
        _check_size(size, ctx)
        batch = parse(line)
        version, threshold, results = _score(session, line, batch.windows, ctx)
    except DB_DOWN as exc:
        raise DatabaseDown(_provisional(line_id, parse, size, ctx)) from exc
    response = {"line_id": line_id, "model_version": version, "threshold": threshold,
                "results": results}
    opened = 0
    try:
        if _writes_needed(session, line, batch, results):
            opened = _persist(session, line_id, batch, results, version, response, ctx)
    except IntegrityError:  # the same batch_id raced in concurrently: answer as the first
        session.rollback()
        get_line(session, line_id)  # or a 404: the line was deleted meanwhile
        first = batches.recall(session, line_id, batch_id) if batch_id is not None else None
        if first is None:
            raise
        return first
    except DB_DOWN as exc:  # scored, not stored: the events it would have opened do not exist
        for r in results:
            r["event_id"] = None
        _observe_provisional(ctx.metrics, line_id, results)
        raise DatabaseDown(response if version is not None else None) from exc
    _observe(ctx.metrics, line_id, results, opened)
    return response


def _check_size(size: int, ctx: ScoringContext) -> None:
    if size > ctx.settings.max_batch_windows:
        raise ApiError(413, "batch_too_large", f"{size} windows in one batch; "
                       f"send at most {ctx.settings.max_batch_windows}")


def _provisional(line_id: str, parse: Callable[[Shape], Batch], size: int,
                 ctx: ScoringContext) -> dict[str, Any] | None:
    """The answer from this process's last view of the line and its model in memory, or None
    when it has neither. The view may be behind another replica's change made just before the
    outage (a new version activated): the answer names the version it scored with."""
    view = ctx.views.get(line_id)
    det = ctx.cache.peek(view.model_id) if view is not None else None
    if view is None or det is None:
        return None
    _check_size(size, ctx)
    results = _results(det, parse(view).windows, view.channels, ctx.settings)
    _observe_provisional(ctx.metrics, line_id, results)
    return {"line_id": line_id, "model_version": view.version, "threshold": view.threshold,
            "results": results}


def _score(session: Session, line: Line, x: np.ndarray, ctx: ScoringContext
           ) -> tuple[int | None, float | None, list[dict[str, Any]]]:
    if line.active_version is None:  # too sparse a window would train the first model too
        observed = 1.0 - np.isnan(x).mean(axis=(1, 2))
        return None, None, [_unscored(i, "warming_up" if o >= ctx.settings.min_observed_fraction
                                      else "insufficient_data") for i, o in enumerate(observed)]
    active = session.execute(select(  # threshold: the regimes' largest
        ModelVersion.id, ModelVersion.version, ModelVersion.threshold).where(
        ModelVersion.line_id == line.id, ModelVersion.version == line.active_version)).first()
    if active is None:  # the line was deleted since it was read, its versions with it
        raise not_found("line", line.id)
    vid, version, threshold = active
    det = ctx.cache.get(vid, lambda: _load(session, vid, line, version))
    _remember(ctx, line, vid, version, threshold)
    return version, threshold, _results(det, x, line.channels, ctx.settings)


def _remember(ctx: ScoringContext, line: Line, vid: int, version: int, threshold: float
              ) -> None:
    """Renewed only when the line's active model changes: a version never changes, and a
    line's shape is fixed while it has a model (app/lines.py)."""
    seen = ctx.views.get(line.id)
    if seen is not None and seen.model_id == vid:
        return
    if seen is None:  # the series start at 0, so increase() counts an outage's first windows
        ctx.metrics.provisional_windows.labels(line.id)
        ctx.metrics.provisional_anomalies.labels(line.id)
    ctx.views[line.id] = LineView(line.id, line.window, list(line.channels), vid, version,
                                  threshold)


def _results(det: models.Detector, x: np.ndarray, channels: list[str], settings: Settings
             ) -> list[dict[str, Any]]:
    s = models.score(det, x)
    # Whole-batch conversions to Python numbers: a float() and round() per value cost 3.4 ms of
    # a 256-window request (7 % of the server's CPU in a py-spy profile), these 0.7 ms.
    shares: list[list[float]] = np.round(s.contributions.astype(np.float64), 6).tolist()
    scores: list[float] = s.score.tolist()
    limits: list[float] = s.limit.tolist()
    ratios: list[float] = s.ratio.tolist()
    regimes: list[int] = s.regime.tolist()
    scored: list[bool] = np.greater_equal(s.observed, settings.min_observed_fraction).tolist()
    held: list[list[bool]] = s.stuck.tolist()
    over: list[list[bool]] = s.over_limit.tolist()
    anomalous: list[bool] = s.anomalous().tolist()
    results = []
    for i in range(len(x)):
        if not scored[i]:
            results.append(_unscored(i, "insufficient_data"))
            continue
        sc = scores[i]
        stuck = [ch for ch, flag in zip(channels, held[i], strict=True) if flag]
        alarm = [ch for ch, flag in zip(channels, over[i], strict=True) if flag]
        results.append({"index": i, "status": "scored", "score": sc,
                        "score_ratio": ratios[i],
                        "anomaly": anomalous[i],
                        "regime": regimes[i], "threshold": limits[i],
                        "contributions": dict(zip(channels, shares[i], strict=True)),
                        "stuck_channels": stuck, "alarm_channels": alarm, "event_id": None})
    return results


def _load(session: Session, vid: int, line: Line, version: int) -> models.Detector:
    """The active version's stored model; damaged bytes (a disk fault, a hand edit) fail this
    line only, with what an operator can do about it."""
    artifact = session.scalar(select(ModelVersion.artifact).where(ModelVersion.id == vid))
    if artifact is None:  # deleted with its line since the line was read
        raise not_found("line", line.id)
    try:
        return models.from_bytes(artifact)
    except ValueError as exc:
        raise ApiError(500, "model_unloadable",
                       f"line {line.id!r}'s active model, version {version}, cannot be loaded "
                       f"({exc}); activate another version (POST /v1/lines/{line.id}/models/"
                       "{version}/activate) or retrain the line", {"version": version}) from exc


def _unscored(index: int, status: str) -> dict[str, Any]:
    return {"index": index, "status": status, "score": None, "score_ratio": None,
            "anomaly": None, "regime": None, "threshold": None, "contributions": None,
            "stuck_channels": None, "alarm_channels": None, "event_id": None}


def _writes_needed(session: Session, line: Line, batch: Batch, results: list[dict[str, Any]]
                   ) -> bool:
    """A plain scoring call (learn=false, no batch_id, all normal, no event to close, the
    line's last_window_at fresh) writes nothing; skipping its row lock and commit halves
    single-window latency. An open event is read for its end alone, outside the identity map:
    _persist reads it again under the lock."""
    if batch.learn or batch.batch_id is not None or any(r.get("anomaly") for r in results):
        return True
    now = utcnow()
    if line.last_window_at is None or now - line.last_window_at >= SEEN_EVERY:
        return True
    if line.open_event_id is None:
        return False
    end = session.scalar(select(AnomalyEvent.end).where(AnomalyEvent.id == line.open_event_id))
    gap = timedelta(seconds=line.event_gap_s)
    return any(r["status"] == "scored"
               and anomalies.closes(end, batch.starts[r["index"]] or now, gap) for r in results)


def _persist(session: Session, line_id: str, batch: Batch, results: list[dict[str, Any]],
             version: int | None, response: dict[str, Any], ctx: ScoringContext) -> int:
    """All writes of one batch in one transaction, under the line's row lock; the number of
    anomaly events it opened."""
    line = get_line(session, line_id, lock=True)  # a 404 if deleted since it was read
    now = utcnow()
    if anomalies.went_silent(line, now):
        line.open_event_id = None
    line.last_window_at = now
    opened = 0
    if version is not None:
        opened = anomalies.record_events(session, line, batch.starts, results, version, now)
    if batch.learn:
        # Anomalous and insufficient windows never train a model, unless an operator vouches
        # for the line: otherwise normal behaviour the model has not seen (a warmer season)
        # would be flagged, never buffered, and so never learned.
        learn_flagged = vouched(line, now)
        keep = [r["index"] for r in results if r["status"] == "warming_up"
                or (r["status"] == "scored" and (learn_flagged or not r["anomaly"]))]
        buffer.append(session, line, batch.windows[keep], [batch.starts[i] for i in keep],
                      ctx.rng)
    if batch.batch_id is not None:
        batches.remember(session, line_id, batch.batch_id, response)
    session.commit()
    return opened


def _observe(m: Metrics, line_id: str, results: list[dict[str, Any]], events_opened: int
             ) -> None:
    scored = [r for r in results if r["status"] == "scored"]
    m.windows.labels(line_id).inc(len(scored))
    m.anomalies.labels(line_id).inc(sum(1 for r in scored if r["anomaly"]))
    m.events.labels(line_id).inc(events_opened)
    for r in scored:
        for channel in r["stuck_channels"]:
            m.stuck.labels(line_id, channel).inc()
        for channel in r["alarm_channels"]:
            m.sensor_alarms.labels(line_id, channel).inc()
    hist = m.score_ratio.labels(line_id)
    for r in scored:
        hist.observe(r["score_ratio"])


def _observe_provisional(m: Metrics, line_id: str, results: list[dict[str, Any]]) -> None:
    """Counted apart from the stored windows: a gateway that resends the batch once the
    database answers has it scored and counted again."""
    scored = [r for r in results if r["status"] == "scored"]
    m.provisional_windows.labels(line_id).inc(len(scored))
    m.provisional_anomalies.labels(line_id).inc(sum(1 for r in scored if r["anomaly"]))
