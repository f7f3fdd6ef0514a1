from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class RetrainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    new_regime: bool = False
    reason: str | None = Field(None, max_length=500)


class CancelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(None, max_length=500)


class JobAccepted(BaseModel):
    job_id: str
    status: str


class JobOut(BaseModel):
    job_id: str
    line_id: str
    trigger: str
    status: str
    new_regime: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int
    model_version: int | None
    metrics: dict[str, Any]
    error: str | None
    reason: str | None
    cancel_requested_at: datetime | None = None  # an extension: an operator asked it to stop


class JobList(BaseModel):
    jobs: list[JobOut]
