from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.times import UtcTime


class FastWindowIn(BaseModel):
    """Envelope of a window for the fast path: `values` is checked as one numpy array."""

    model_config = ConfigDict(extra="forbid")
    # With a zone, as the contract says: a naive time would be read in no zone at all.
    start: UtcTime | None = Field(None, description="RFC 3339 with a zone")
    values: list[Any]


class FastScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    batch_id: str | None = Field(None, min_length=1, max_length=200)
    learn: bool = True
    windows: list[FastWindowIn] = Field(min_length=1)


class WindowIn(FastWindowIn):
    values: list[list[float | None]]


class ScoreRequest(FastScoreRequest):
    """The contract's body, element by element: used to name the field when the fast path
    finds something wrong, and for the OpenAPI schema."""

    windows: list[WindowIn] = Field(min_length=1)  # type: ignore[assignment]


class WindowResult(BaseModel):
    index: int
    status: Literal["scored", "warming_up", "insufficient_data"]
    score: float | None = None
    score_ratio: float | None = None
    anomaly: bool | None = None
    regime: int | None = None
    # An extension of the contract: the alarm threshold of this window's regime, which
    # score_ratio divides by; the response's `threshold` is the largest of the regimes'.
    threshold: float | None = None
    contributions: dict[str, float] | None = None
    # An extension of the contract: channels holding one reading through the window (a frozen
    # sensor), which make the window anomalous whatever its score (models/stuck.py).
    stuck_channels: list[str] | None = None
    # Another: channels whose own residual passed their limit, which make the window
    # anomalous whatever the summed score (a fault on one sensor of many; models/calibration.py).
    alarm_channels: list[str] | None = None
    # Another: the anomaly event an anomalous window joined (GET /v1/lines/{id}/anomalies),
    # for a gateway that raises its own alarm and links it to the operator's acknowledgement.
    event_id: int | None = None


class ScoreResponse(BaseModel):
    line_id: str
    model_version: int | None
    threshold: float | None
    results: list[WindowResult]
