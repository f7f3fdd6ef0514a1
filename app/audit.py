"""Audit trail of operator actions: who did what to which line, when."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.tables import AuditEntry


def record(session: Session, *, actor: str, action: str, line_id: str | None = None,
           **details: Any) -> None:
    session.add(AuditEntry(actor=actor, action=action, line_id=line_id, details=details))
