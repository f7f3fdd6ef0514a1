"""Audit trail of operator actions: who did what to which line, when."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from app.tables import AuditEntry

log = logging.getLogger(__name__)
_PENDING = "lifeline_audit_pending"  # in Session.info: entries to log once committed


def record(session: Session, *, actor: str, action: str, line_id: str | None = None,
           **details: Any) -> None:
    """The entry joins the caller's transaction, and reaches the log (`_log_committed`) only
    if that commits: a 409 or a lost race logs no action that did not happen."""
    session.add(AuditEntry(actor=actor, action=action, line_id=line_id, details=details))
    session.info.setdefault(_PENDING, []).append((actor, action, line_id, details))


@event.listens_for(Session, "after_commit")
def _log_committed(session: Session) -> None:
    for actor, action, line_id, details in session.info.pop(_PENDING, []):
        where = f" on line {line_id}" if line_id is not None else ""
        said = " ".join(f"{k}={v}" for k, v in details.items())
        log.info("%s %s%s%s", actor, action, where, f": {said}" if said else "",
                 extra={"actor": actor, "action": action, "line_id": line_id,
                        "details": details})  # not spread: "name" would clash with the record's


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_PENDING, None)


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
