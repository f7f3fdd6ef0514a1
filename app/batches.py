"""Answers to batches posted with a batch_id, kept so that a gateway's retry is answered again
and counted once (api.md), and forgotten after LIFELINE_BATCH_MEMORY_S."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.tables import IngestBatch


def recall(session: Session, line_id: str, batch_id: str) -> dict[str, Any] | None:
    seen = session.get(IngestBatch, (line_id, batch_id))
    return seen.response if seen is not None else None


def remember(session: Session, line_id: str, batch_id: str, response: dict[str, Any]) -> None:
    """Within the batch's own transaction: its answer and its windows commit together."""
    session.add(IngestBatch(line_id=line_id, batch_id=batch_id, response=response))


def forget_before(session: Session, cutoff: datetime, *, most: int = 10_000) -> int:
    """Drop the `most` oldest answers remembered before `cutoff`, committed; the
    next tick takes the next ones. A backlog (the first tick after an upgrade) goes in short
    transactions, not one that holds the table and swells the log."""
    older = select(IngestBatch.created_at).where(IngestBatch.created_at < cutoff)
    upto = session.scalar(older.order_by(IngestBatch.created_at).offset(most - 1).limit(1))
    # `<=`: answers sharing the last one's timestamp go too, so ties cannot stall the pruning
    until = IngestBatch.created_at <= upto if upto else IngestBatch.created_at < cutoff
    res = session.execute(delete(IngestBatch).where(until))
    session.commit()
    return res.rowcount or 0  # type: ignore[attr-defined,no-any-return]
