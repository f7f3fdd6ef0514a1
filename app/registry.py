"""Model versions: create, activate (deleting the windows that trained it), list."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app import audit, buffer
from app.db import get_for_update, utcnow
from app.errors import ApiError, not_found
from app.tables import Line, ModelVersion


def get_version(session: Session, line_id: str, version: int) -> ModelVersion:
    row = session.scalar(select(ModelVersion).where(
        ModelVersion.line_id == line_id, ModelVersion.version == version))
    if row is None:
        raise not_found("model_version", f"{line_id} v{version}")
    return row


def list_versions(session: Session, line_id: str) -> list[ModelVersion]:
    return list(session.scalars(select(ModelVersion).where(
        ModelVersion.line_id == line_id).order_by(ModelVersion.version)))


def create_version(
    session: Session, *, line: Line, parent_version: int | None, artifact: bytes, status: str,
    regimes: int, threshold: float, metrics: dict[str, Any], reasons: list[str],
    trained_ids: np.ndarray, job_id: str | None,
) -> ModelVersion:
    """`parent_version`: the teacher it learned from (None for a line's first model)."""
    last = session.scalar(select(func.max(ModelVersion.version)).where(
        ModelVersion.line_id == line.id)) or 0
    row = ModelVersion(
        line_id=line.id, version=last + 1, parent_version=parent_version, status=status,
        regimes=regimes, threshold=threshold, metrics=metrics, reasons=reasons,
        artifact=artifact, trained_window_ids=trained_ids.astype("<i8").tobytes(), job_id=job_id)
    session.add(row)
    session.flush()
    return row


def activate(session: Session, *, line: Line, row: ModelVersion) -> int:
    """Serve `row` from now on; returns how many buffered windows were deleted.

    Runs inside the caller's transaction: the switch and the deletion of the windows that
    trained the version commit together or not at all.
    """
    if row.status == "rejected":
        raise ApiError(409, "version_rejected",
                       f"version {row.version} was rejected by the gate and cannot serve",
                       {"reasons": row.reasons})
    if row.pruned_at is not None:
        raise ApiError(409, "version_pruned",
                       f"version {row.version}'s model was dropped (only the newest versions' "
                       "are kept, LIFELINE_KEEP_VERSIONS); activate a newer one or retrain",
                       {"pruned_at": row.pruned_at.isoformat()})
    session.execute(update(ModelVersion).where(
        ModelVersion.line_id == line.id, ModelVersion.status == "active",
        ModelVersion.id != row.id).values(status="retired"))
    row.status, row.activated_at = "active", utcnow()
    line.active_version = row.version
    line.open_event_id = None
    ids = np.frombuffer(row.trained_window_ids, dtype="<i8")
    deleted = buffer.delete_trained(session, line, ids)
    line.buffer_seen = line.buffer_windows
    return deleted


def prune(session: Session, *, line: Line, keep: int) -> int:
    """Drop the model and trained ids of the line's versions older than its newest `keep`,
    never the active one's, inside the caller's transaction; their record (metrics, gate
    reasons, lineage) stays. The trained ids have done their work: a version's windows were
    deleted when it first served. Returns how many versions were pruned."""
    newest = session.scalar(select(func.max(ModelVersion.version)).where(
        ModelVersion.line_id == line.id)) or 0
    res = session.execute(
        update(ModelVersion).where(
            ModelVersion.line_id == line.id, ModelVersion.version <= newest - keep,
            ModelVersion.version != (line.active_version or 0), ModelVersion.pruned_at.is_(None))
        .values(artifact=b"", trained_window_ids=b"", pruned_at=utcnow()),
        execution_options={"synchronize_session": False})
    return res.rowcount or 0  # type: ignore[attr-defined,no-any-return]


def activate_version(session: Session, *, line: Line, version: int, actor: str) -> ModelVersion:
    """Operator action: promote a candidate or roll back to an earlier version. A line deleted
    since the request read it is a 404 for the line, not for its version."""
    if get_for_update(session, Line, line.id) is None:
        raise not_found("line", line.id)
    row = get_version(session, line.id, version)
    previous = line.active_version
    deleted = activate(session, line=line, row=row)
    audit.record(session, actor=actor, action="model.activate", line_id=line.id,
                 version=version, previous=previous, buffer_deleted=deleted)
    session.commit()
    return row
