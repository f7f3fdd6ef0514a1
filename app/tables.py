"""Typed tables. Raw sensor values live in `buffer_windows` and nowhere else."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, utcnow

BigId = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements INTEGER only
OPEN_JOB = "status IN ('queued', 'running')"


class Line(Base):
    __tablename__ = "lines"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    channels: Mapped[list[Any]]
    window: Mapped[int]
    retrain_interval_s: Mapped[int]
    min_windows: Mapped[int]
    promotion: Mapped[str] = mapped_column(String(16))
    target_false_alarm_rate: Mapped[float]
    buffer_limit: Mapped[int]
    active_version: Mapped[int | None]
    last_trained_at: Mapped[datetime | None]
    buffer_seen: Mapped[int] = mapped_column(default=0)  # offered to the reservoir since training
    buffer_dropped: Mapped[int] = mapped_column(default=0)
    # Windows in the fresh buffer, kept by every change to it under the line's lock: counting
    # them was a third of a one-window learn=true request's writes (app/buffer.py).
    buffer_windows: Mapped[int] = mapped_column(default=0)
    open_event_id: Mapped[int | None]  # anomaly event the next anomalous window extends
    # Seconds of windows scored normal that close the open event (app/anomalies.py).
    event_gap_s: Mapped[int] = mapped_column(default=60)
    # Seconds without a window after which the line counts as silent: the alert's limit, and
    # the next window closes the open event (app/anomalies.py).
    silent_after_s: Mapped[int] = mapped_column(default=900)
    # Until then flagged windows join the buffer too: an operator vouches for the line's data.
    learn_flagged_until: Mapped[datetime | None]
    # When a window for the line last arrived, at most scorer.SEEN_EVERY behind: a line gone
    # silent is a line nobody watches (alert LifelineLineSilent).
    last_window_at: Mapped[datetime | None]
    # Channel names judged by their shape within a window, not their level (models/preprocessing).
    shape_only_channels: Mapped[list[Any]] = mapped_column(default=list)
    # Models judge the line on its sensors' principal axes (models/preprocessing.py).
    principal_axes: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When an operator last changed the configuration; windows, events and trainings do not.
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class BufferWindow(Base):
    __tablename__ = "buffer_windows"
    # Never reuse an id on SQLite: activation deletes a version's training windows by id
    # (migration 0008). The oldest window per line, for every scrape, is one index lookup
    # (migration 0009; grouping the whole buffer took 79 ms at 100,000 windows on SQLite).
    __table_args__ = (Index("ix_buffer_windows_line_id_received_at", "line_id", "received_at"),
                      {"sqlite_autoincrement": True})
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    line_id: Mapped[str] = mapped_column(ForeignKey("lines.id", ondelete="CASCADE"), index=True)
    start: Mapped[datetime | None]
    values: Mapped[bytes] = mapped_column(LargeBinary)  # float32 [T, C], NaN = missing
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("line_id", "version"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    line_id: Mapped[str] = mapped_column(ForeignKey("lines.id", ondelete="CASCADE"), index=True)
    version: Mapped[int]
    parent_version: Mapped[int | None]
    status: Mapped[str] = mapped_column(String(16))  # active | candidate | retired | rejected
    regimes: Mapped[int]
    threshold: Mapped[float]
    metrics: Mapped[dict[str, Any]]
    reasons: Mapped[list[Any]]
    # The two blobs load only when read: listing versions or scraping metrics needs neither.
    artifact: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    # int64 ids of the buffer windows that trained it, deleted when it is activated
    trained_window_ids: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    job_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    activated_at: Mapped[datetime | None]
    pruned_at: Mapped[datetime | None]  # its blobs dropped (registry.prune): it cannot serve


class TrainingJob(Base):
    __tablename__ = "training_jobs"
    __table_args__ = (
        # One open job per line: a second enqueue fails, which is the contract's 409.
        Index("uq_training_jobs_open_line", "line_id", unique=True,
              postgresql_where=text(OPEN_JOB), sqlite_where=text(OPEN_JOB)),
        Index("ix_training_jobs_status", "status"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    line_id: Mapped[str] = mapped_column(ForeignKey("lines.id", ondelete="CASCADE"), index=True)
    trigger: Mapped[str] = mapped_column(String(16))  # schedule | operator | warm_up
    # queued | running | succeeded | rejected | failed | cancelled
    status: Mapped[str] = mapped_column(String(16))
    new_regime: Mapped[bool] = mapped_column(default=False)
    reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    model_version: Mapped[int | None]
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(String(2000))
    cancel_requested_at: Mapped[datetime | None]  # its owner stops it at the next epoch


class IngestBatch(Base):
    """Answers to batches posted with a batch_id, so a retry is answered again, counted once."""

    __tablename__ = "ingest_batches"
    line_id: Mapped[str] = mapped_column(
        ForeignKey("lines.id", ondelete="CASCADE"), primary_key=True)
    batch_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    response: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    # The lines a gateway key may post windows to; None: every line (app/auth.py, `may_post`).
    lines: Mapped[list[Any] | None]
    # When a request last came with the key, at most KEY_STAMP_EVERY behind (app/auth.py).
    last_used_at: Mapped[datetime | None]


class AnomalyEvent(Base):
    """Scores and contributions of consecutive anomalous windows; never raw values."""

    __tablename__ = "anomaly_events"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    line_id: Mapped[str] = mapped_column(ForeignKey("lines.id", ondelete="CASCADE"))
    start: Mapped[datetime]
    end: Mapped[datetime]
    windows: Mapped[int]
    max_score: Mapped[float]
    max_score_ratio: Mapped[float]
    top_channels: Mapped[list[Any]]
    model_version: Mapped[int]
    acknowledged_at: Mapped[datetime | None]  # an operator has seen it
    acknowledged_by: Mapped[str | None] = mapped_column(String(120))
    verdict: Mapped[str | None] = mapped_column(String(16))  # fault | false_alarm | None
    note: Mapped[str | None] = mapped_column(String(500))
    __table_args__ = (Index("ix_anomaly_events_line_start", "line_id", "start"),)


class AuditEntry(Base):
    __tablename__ = "audit_entries"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(64))
    line_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
