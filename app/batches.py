"""Answers to batches posted with a batch_id, kept so that a gateway's retry is answered again
and counted once (api.md), and forgotten after LIFELINE_BATCH_MEMORY_S."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session

from app.tables import IngestBatch


def recall(session: Session, line_id: str, batch_id: str) -> dict[str, Any] | None:
    seen = session.get(IngestBatch, (line_id, batch_id))
    return seen.response if seen is not None else None


def remember(session: Session, line_id: str, batch_id: str, response: dict[str, Any]) -> None:
    """Within the batch's own transaction: its answer and its windows commit together."""
    session.add(IngestBatch(line_id=line_id, batch_id=batch_id, response=response))


def forget_before(session: Session, cutoff: datetime) -> int:
    """Drop answers remembered before `cutoff` (an index range on created_at); committed."""
    res = session.execute(delete(IngestBatch).where(IngestBatch.created_at < cutoff))
    session.commit()
    return res.rowcount or 0  # type: ignore[attr-defined,no-any-return]
