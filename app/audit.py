"""Audit trail of operator actions: who did what to which line, when."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.tables import AuditEntry


def record(session: Session, *, actor: str, action: str, line_id: str | None = None,
           **details: Any) -> None:
    session.add(AuditEntry(actor=actor, action=action, line_id=line_id, details=details))


def list_entries(session: Session, *, line_id: str | None, action: str | None,
                 since: datetime | None, before: int | None, limit: int) -> list[AuditEntry]:
    """Newest first. A deleted line's entries stay (its name is not a reference), so "who
    deleted press-3" still has an answer; `before` pages back past an entry's id."""
    q = select(AuditEntry)
    for column, value in ((AuditEntry.line_id, line_id), (AuditEntry.action, action)):
        if value is not None:
            q = q.where(column == value)
    if since is not None:
        q = q.where(AuditEntry.at >= since)
    if before is not None:
        q = q.where(AuditEntry.id < before)
    return list(session.scalars(q.order_by(AuditEntry.id.desc()).limit(limit)))


def entry_out(e: AuditEntry) -> dict[str, Any]:
    return {"id": e.id, "at": e.at, "actor": e.actor, "action": e.action,
            "line_id": e.line_id, "details": e.details}
