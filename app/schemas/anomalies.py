from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class AnomalyOut(BaseModel):
    id: int
    start: datetime
    end: datetime
    open: bool = Field(description="the line has not looked normal for its event_gap_s since "
                       "the event's last anomalous window: its next one extends this event")
    windows: int
    max_score: float
    max_score_ratio: float
    top_channels: list[str]
    model_version: int
    acknowledged_at: datetime | None = Field(description="when an operator acknowledged it")
    acknowledged_by: str | None
    verdict: Literal["fault", "false_alarm"] | None = Field(
        description="the operator's verdict: a real fault, or a false alarm")
    note: str | None


class AnomalyList(BaseModel):
    anomalies: list[AnomalyOut]


class AcknowledgeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    verdict: Literal["fault", "false_alarm"] | None = Field(
        None, description="a real fault, or a false alarm; left out: seen, not yet judged")
    note: str | None = Field(None, max_length=500, description="e.g. the work order")
