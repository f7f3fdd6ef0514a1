"""The fresh buffer: the only place raw sensor values are stored.

Bounded per line by reservoir sampling (Vitter's algorithm R): once full, the k-th window offered
since the last training replaces a random stored one with probability limit / k, so the buffer
stays a uniform sample of the whole interval instead of its last hours. Windows that trained a
model are deleted in the transaction that activates it (`registry.activate`).
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from app.db import get_for_update, wipe_on_commit
from app.tables import BufferWindow, Line, TrainingJob


def encode(window: np.ndarray) -> bytes:
    return np.ascontiguousarray(window, dtype="<f4").tobytes()


def decode(blobs: list[bytes], window: int, channels: int) -> np.ndarray:
    """[N, T, C] float32 from stored blobs."""
    if not blobs:
        return np.zeros((0, window, channels), dtype=np.float32)
    flat = np.frombuffer(b"".join(blobs), dtype="<f4")
    return flat.reshape(len(blobs), window, channels).copy()  # writable, for torch


def oldest(session: Session, line_ids: list[str] | None = None) -> dict[str, datetime | None]:
    """When each line's oldest buffered window arrived (all lines, or those named): one
    index lookup per line, where grouping would read every window."""
    first = select(func.min(BufferWindow.received_at)).where(
        BufferWindow.line_id == Line.id).scalar_subquery()
    q = select(Line.id, first)
    if line_ids is not None:
        q = q.where(Line.id.in_(line_ids))
    return dict(session.execute(q).all())


def append(
    session: Session, line: Line, windows: np.ndarray, starts: list[datetime | None],
    rng: np.random.Generator,
) -> int:
    """Offer windows [N, T, C] to the line's reservoir; returns how many were stored.
    Algorithm R over the batch in memory: a replacer evicts a uniform pick of the reservoir as
    it stands, stored windows and this batch's alike; then one eviction, one insert. The
    caller holds the line's lock (its counters are read and written back)."""
    old = stored = line.buffer_windows
    kept: list[int] = []  # this batch's windows in the reservoir
    for i in range(len(windows)):
        line.buffer_seen += 1
        if old + len(kept) < line.buffer_limit:
            kept.append(i)
            continue
        line.buffer_dropped += 1  # a window is lost either way: this one or a victim
        if rng.integers(line.buffer_seen) < line.buffer_limit:
            victim = int(rng.integers(old + len(kept)))
            if victim < old:
                old -= 1
            else:
                kept.pop(victim - old)
            kept.append(i)
    if old < stored:
        _evict(session, line.id, stored, stored - old, rng)
    if kept:
        session.execute(insert(BufferWindow), [
            {"line_id": line.id, "start": starts[i], "values": encode(windows[i])} for i in kept])
    line.buffer_windows = old + len(kept)
    return len(kept)


def shrink(session: Session, line: Line, rng: np.random.Generator) -> int:
    """Evict down to a lowered buffer_limit at once; returns how many went. Left alone, the
    reservoir would hold its old size (each window it keeps replaces one) until the next
    model's activation. A uniform pick of a uniform sample is one, so algorithm R goes on."""
    stored = line.buffer_windows
    excess = stored - line.buffer_limit
    if excess <= 0:
        return 0
    _evict(session, line.id, stored, excess, rng)
    wipe_on_commit(session)
    line.buffer_dropped += excess
    line.buffer_windows = line.buffer_limit
    return excess


_FEW = 8


def _evict(session: Session, line_id: str, stored: int, k: int, rng: np.random.Generator
           ) -> None:
    """Delete k of the line's `stored` windows, chosen uniformly. A few are found by their
    position in the id index (a gateway posting one window at a time into a full buffer:
    4.3 -> 0.8 ms on SQLite with 20,000 stored, bench/README.md); many by one shuffle."""
    mine = BufferWindow.line_id == line_id
    if k <= _FEW:
        ids = [session.scalar(select(BufferWindow.id).where(mine).order_by(BufferWindow.id)
                              .offset(int(o)).limit(1))
               for o in rng.choice(stored, size=k, replace=False)]
        victims = delete(BufferWindow).where(BufferWindow.id.in_(ids))
    else:
        shuffled = select(BufferWindow.id).where(mine).order_by(func.random()).limit(k)
        victims = delete(BufferWindow).where(BufferWindow.id.in_(shuffled.scalar_subquery()))
    session.execute(victims, execution_options={"synchronize_session": False})


def snapshot(session: Session, line: Line) -> tuple[np.ndarray, np.ndarray]:
    """(ids [N] int64, windows [N, T, C]) of the whole buffer, oldest first."""
    rows = session.execute(select(BufferWindow.id, BufferWindow.values).where(
        BufferWindow.line_id == line.id).order_by(BufferWindow.id)).all()
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    return ids, decode([r[1] for r in rows], line.window, len(line.channels))


def discard(session: Session, line: Line, since: datetime | None, until: datetime | None
            ) -> int | None:
    """Delete the line's windows timed in [since, until) (the gateway's `start`, else when
    received), or None, deleting nothing, while a training job runs: it trains on the buffer
    as it was. One guarded statement, so a job claimed meanwhile either blocks it or sees the
    deletion: the caller holds the line's row lock, which the trainer takes before its
    snapshot (app/trainer.py)."""
    at = func.coalesce(BufferWindow.start, BufferWindow.received_at)
    running = select(TrainingJob.id).where(TrainingJob.line_id == line.id,
                                           TrainingJob.status == "running").exists()
    stmt = delete(BufferWindow).where(BufferWindow.line_id == line.id, ~running)
    if since is not None:
        stmt = stmt.where(at >= since)
    if until is not None:
        stmt = stmt.where(at < until)
    deleted: int = session.execute(stmt).rowcount  # type: ignore[attr-defined]
    if deleted == 0 and session.scalar(select(running)):
        return None
    if deleted:
        wipe_on_commit(session)
    line.buffer_windows -= deleted
    return deleted


def delete_trained(session: Session, line: Line, ids: np.ndarray) -> int:
    """Delete the windows that trained a model now active (the retention guarantee); those
    evicted or discarded since its snapshot are gone already."""
    deleted = 0
    for i in range(0, len(ids), 5000):  # stay under bind-parameter limits
        chunk = [int(x) for x in ids[i : i + 5000]]
        res = session.execute(delete(BufferWindow).where(
            BufferWindow.line_id == line.id, BufferWindow.id.in_(chunk)))
        deleted += res.rowcount or 0  # type: ignore[attr-defined]
    if deleted:
        wipe_on_commit(session)
    line.buffer_windows -= deleted
    return deleted


def recount(session: Session) -> list[tuple[str, int, int]]:
    """Lines whose buffer counter disagrees with their rows, corrected: (line, counter, rows).
    Every path that adds or deletes windows changes the counter with them under the line's
    lock, so only a restore without the buffer's rows (a backup that keeps the retention
    promise) or a hand edit makes them differ. Each suspect is checked again under that lock:
    a write in flight on another replica is not taken for a drift."""
    rows = select(func.count()).where(BufferWindow.line_id == Line.id).scalar_subquery()
    fixed = []
    for line_id in session.scalars(select(Line.id).where(Line.buffer_windows != rows)).all():
        line = get_for_update(session, Line, line_id)
        n = session.scalar(select(func.count()).where(BufferWindow.line_id == line_id)) or 0
        if line is not None and line.buffer_windows != n:
            fixed.append((line_id, line.buffer_windows, n))
            # the reservoir counts on from what is kept (algorithm R needs seen >= stored)
            line.buffer_seen = n if n < line.buffer_windows else max(n, line.buffer_seen)
            line.buffer_windows = n
        session.commit()
    return fixed
