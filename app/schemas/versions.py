from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class VersionOut(BaseModel):
    version: int
    parent_version: int | None
    status: str
    created_at: datetime
    activated_at: datetime | None
    regimes: int
    threshold: float
    metrics: dict[str, Any]
    reasons: list[str]
    job_id: str | None
    pruned_at: datetime | None = None  # its model dropped (LIFELINE_KEEP_VERSIONS): not activatable


class VersionList(BaseModel):
    models: list[VersionOut]
