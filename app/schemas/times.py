"""Times in requests: RFC 3339 with a zone (the contract), kept in UTC (the database)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime


def _in_utc(t: datetime) -> datetime:
    try:
        return t.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59:59-14:00 is year 10,000 in UTC
        raise ValueError("lies outside the years 1-9999 once in UTC") from None


UtcTime = Annotated[AwareDatetime, AfterValidator(_in_utc)]
