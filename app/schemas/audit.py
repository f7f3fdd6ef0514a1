from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str = Field(description="the key that acted, as `key:<id>:<name>`; `cli:<user>` "
                                   "for the command line, `service:bootstrap` at start")
    action: str = Field(description="line.create, line.update, line.delete, line.retrain, "
                                    "buffer.discard, model.activate, job.cancel, "
                                    "anomaly.acknowledge, key.create, key.revoke")
    line_id: str | None
    details: dict[str, Any] = Field(description="what the action changed or said (its reason)")


class AuditList(BaseModel):
    entries: list[AuditOut]
