"""All configuration in one place, read once from LIFELINE_* environment variables."""

from __future__ import annotations

import os
import socket
from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LIFELINE_", env_file=".env", extra="ignore")

    database_url: str = "sqlite:///./lifeline.db"
    database_pool_timeout_s: float = Field(30.0, gt=0, description="how long a request waits "
                                           "for a free database connection before a 503")
    host: str = "127.0.0.1"
    port: int = 8000
    bootstrap_operator_key: SecretStr | None = None

    scheduler_enabled: bool = True
    tick_seconds: float = Field(5.0, gt=0, description="how often due lines and jobs are checked")
    # A separate process keeps scoring latency flat while a model trains (torch holds the GIL
    # in parts of its Python loop); "thread" is for tests and single-core boxes.
    train_executor: Literal["process", "thread"] = "process"
    train_threads: int = Field(1, ge=1, description="torch threads of a training job")
    train_max_epochs: int = Field(60, ge=1)
    # Where training jobs run: "auto" takes CUDA when torch sees a device, else the CPU; or
    # "cpu", "cuda", "cuda:N". Scoring stays on the CPU: a window is ~1.3 MFLOP, well under a
    # millisecond there, and the service scores many small batches (bench/README.md).
    train_device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:[0-9]+)?)$")
    train_seed: int = 0
    # A line's first model is trained this many more times, each without one block of the
    # buffer, and its threshold read off the scores of windows those models never saw (models
    # TrainConfig.calibration_folds): false alarms on the real data's next run fell from 32 to
    # 15 % (TEP) and 76 to 38 % (SKAB). 0 = the held-out block alone.
    calibration_folds: int = Field(4, ge=0, le=16)
    job_lease_s: float = Field(300.0, gt=0, description="a job silent this long is reaped")
    job_max_attempts: int = Field(3, ge=1)
    instance_name: str = Field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}", min_length=1,
        description="who holds a job's lease, one per replica; a start fails the jobs its "
        "earlier life left running (app/jobs.py)")

    buffer_limit: int = Field(20_000, ge=10, description="default fresh-buffer bound per line")
    # Raw values one line's buffer may hold, whatever its shape: 20,000 windows of 64 x 512 are
    # 2.6 GB in the database and ~10x that in the training job (bench/README.md, wide lines).
    buffer_max_mb: float = Field(256.0, gt=0, description="fresh-buffer bound per line, MB")
    # Each version keeps its model and its trained ids, a few hundred kB: a line retrained
    # daily piled up 140 MB a year. Older versions than these keep their record only.
    keep_versions: int = Field(20, ge=1, description="newest model versions per line whose "
                               "models are kept, for rollback; the active one is always kept")
    max_batch_windows: int = Field(1024, ge=1)
    # A batch's answer is kept this long for a gateway's retry with the same batch_id, then
    # forgotten: a gateway posting every second with ids kept 86,400 answers a day per line,
    # each up to tens of kB, for ever.
    batch_memory_s: float = Field(86_400.0, gt=0, description="how long a batch_id is "
                                  "remembered: a retry within it is answered again, counted once")
    max_body_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    min_observed_fraction: float = Field(0.5, gt=0, le=1, description="below: insufficient_data")
    model_cache_size: int = Field(64, ge=1, description="loaded models kept per process; a "
                                  "line among them is also scored through a database outage")
    score_threads: int = Field(1, ge=1, description="torch threads used by scoring requests")
    # Log lines on stderr: "json" for a log shipper (Loki, Elasticsearch), one object a line
    # with the line and job ids as fields (app/logs.py).
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["debug", "info", "warning", "error"] = "info"


@lru_cache
def get_settings() -> Settings:
    return Settings()
