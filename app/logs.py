"""Where the service's log lines go, configured once by `lifeline serve` (uvicorn applies it):
stderr, UTC timestamps, and with LIFELINE_LOG_FORMAT=json one JSON object a line, so that a
log shipper indexes `line_id`, `job_id` and `version` without parsing sentences. Python's
default shows warnings only, unformatted: a retrain's start and end never reached the log."""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from app.settings import Settings

DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# What every JSON line carries; a call's `extra` adds its own fields (line_id, job_id, ...).
JSON_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
JSON_NAMES = {"asctime": "time", "levelname": "level", "name": "logger"}


def _utc(seconds: float | None) -> time.struct_time:
    return time.gmtime(seconds)


class TextFormatter(logging.Formatter):
    converter = staticmethod(_utc)


class JsonLineFormatter(JsonFormatter):
    converter = staticmethod(_utc)


def config(settings: Settings) -> dict[str, Any]:
    """A logging.config.dictConfig for uvicorn's `log_config`: the service's loggers, uvicorn's
    and APScheduler's, all through one stderr handler."""
    formatter: dict[str, Any] = (
        {"()": JsonLineFormatter, "fmt": JSON_FORMAT, "rename_fields": JSON_NAMES,
         "reserved_attrs": [*RESERVED_ATTRS, "color_message"]}  # uvicorn's ANSI-coloured copy
        if settings.log_format == "json" else {"()": TextFormatter, "fmt": TEXT_FORMAT})
    level = settings.log_level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": {**formatter, "datefmt": DATE_FORMAT}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "default",
                                "stream": "ext://sys.stderr"}},
        "root": {"handlers": ["stderr"], "level": level},
        # uvicorn gives its loggers their own handlers unless told otherwise: the root's here
        "loggers": {**{name: {"handlers": [], "level": level, "propagate": True}
                       for name in ("uvicorn", "uvicorn.error", "uvicorn.access")},
                    # at info it logs each tick's run twice, every LIFELINE_TICK_SECONDS
                    "apscheduler": {"level": "WARNING"}},
    }


class EveryFewSeconds:
    """A warning that would otherwise come many times a second (each request, each tick while
    the database is down) said once every `seconds`, with how many times it came meanwhile.
    One per calling thread (the event loop, the scheduler's): no lock."""

    def __init__(self, log: logging.Logger, seconds: float) -> None:
        self.log, self.seconds = log, seconds
        self.at, self.times = -math.inf, 0

    def warn(self, message: str, *args: object) -> None:
        self.times += 1
        if time.monotonic() - self.at < self.seconds:
            return
        if self.times > 1:
            message += f" ({self.times} times since the last such message)"
        self.log.warning(message, *args, extra={"times": self.times})
        self.at, self.times = time.monotonic(), 0
