from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from app.schemas.times import UtcTime

LINE_ID = r"^[A-Za-z0-9_.\-]{1,64}$"


class LineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channels: list[str] = Field(min_length=1, max_length=512)
    window: int = Field(ge=4, le=4096, description="steps per window")
    retrain_interval_s: int = Field(86_400, ge=60)
    min_windows: int = Field(500, ge=20, description="windows needed before a training")
    promotion: Literal["auto", "manual"] = "auto"
    target_false_alarm_rate: float = Field(0.01, gt=0, lt=0.5)
    buffer_limit: int | None = Field(None, ge=20, description="fresh-buffer bound (windows)")
    learn_flagged_until: UtcTime | None = Field(
        None, description="until this time (RFC 3339 with a zone) windows the model flags also "
        "join the fresh buffer: the operator vouches that the line runs normally, e.g. after "
        "a change the model has not seen yet")
    shape_only_channels: list[str] = Field(
        default_factory=list, description="channels judged by their shape within a window, "
        "not their level: for sensors whose level drifts in normal running (temperatures during "
        "a warm-up). A slow excursion of such a channel goes unseen. Fixed by the first model")
    principal_axes: bool = Field(
        True, description="judge the line on the principal axes of its sensors' normal "
        "readings, so that correlated sensors moving apart is flagged even when each stays in "
        "its range; false judges each sensor on its own, for a line whose sensors' "
        "correlations change in normal running. Fixed by the first model")
    event_gap_s: int = Field(
        60, ge=0, le=86_400, description="seconds of windows scored normal (by their start) "
        "that close an anomaly event: a fault whose windows cross the threshold on and off is "
        "one event, not a chatter of many (an off-delay). 0: the first normal window closes it")
    silent_after_s: int = Field(
        900, ge=60, le=604_800, description="seconds without a window, from any gateway, "
        "after which the line counts as silent: the LifelineLineSilent alert fires, and the "
        "line's next window closes its open event, so an anomaly after the silence opens a "
        "new one instead of extending one an operator may have acknowledged. A few times the "
        "line's posting interval")

    @field_validator("channels")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        dupes = sorted({c for c in v if v.count(c) > 1})
        if dupes:
            raise ValueError(f"channel names must be unique; repeated: {dupes}")
        return v

    @field_validator("shape_only_channels")
    @classmethod
    def _shape_only_are_channels(cls, v: list[str], info: ValidationInfo) -> list[str]:
        channels = info.data.get("channels")
        if channels is None:  # channels itself was refused; that error says enough
            return v
        unknown = [c for c in v if c not in channels]
        if unknown:
            raise ValueError(f"must name channels of this line; unknown: {unknown}")
        return sorted(set(v), key=channels.index)


class ActiveModel(BaseModel):
    version: int
    threshold: float
    regimes: int
    created_at: datetime


class BufferState(BaseModel):
    windows: int
    oldest_at: datetime | None
    dropped: int


class BufferDiscarded(BaseModel):
    line_id: str
    deleted: int = Field(description="windows deleted from the fresh buffer")
    buffer: BufferState


class LineOut(LineConfig):
    model_config = ConfigDict(extra="ignore")

    line_id: str
    buffer_limit: int  # type: ignore[assignment]
    state: Literal["warming_up", "ready"]
    active_model: ActiveModel | None
    buffer: BufferState
    last_window_at: datetime | None = Field(
        description="when a window for the line last arrived, from any gateway (up to 30 s "
        "behind); null until the first. A line gone silent is not being watched")
    next_retrain_at: datetime | None
    created_at: datetime
    updated_at: datetime = Field(description="when an operator last changed the line's "
                                 "configuration (PUT); windows and trainings leave it")


class LineList(BaseModel):
    lines: list[LineOut]
