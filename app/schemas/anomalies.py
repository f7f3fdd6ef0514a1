from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class AnomalyOut(BaseModel):
    id: int
    start: datetime
    end: datetime
    windows: int
    max_score: float
    max_score_ratio: float
    top_channels: list[str]
    model_version: int


class AnomalyList(BaseModel):
    anomalies: list[AnomalyOut]
