"""The FastAPI application: create_app(settings) wires database, models, scheduler, routes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import numpy as np
import torch
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Gauge

from app import buffer as fresh_buffer
from app import errors, jobs, migrate
from app.api import anomalies, audit, buffer, health, lines, scoring, training, versions
from app.api.deps import Services
from app.auth import ensure_bootstrap_key
from app.body_limit import BodyLimit
from app.compute import Compute
from app.db import make_engine, make_sessionmaker
from app.instance import InstanceName
from app.metrics import Metrics, StateCollector
from app.model_cache import ModelCache
from app.scheduler import Scheduler
from app.scorer import ScoringContext
from app.settings import Settings, get_settings
from app.trainer import JobRunner
from models import reuse_freed_memory

log = logging.getLogger("lifeline")


def build_services(settings: Settings) -> tuple[Services, Compute]:
    sessions = make_sessionmaker(make_engine(settings.database_url,
                                             pool_timeout_s=settings.database_pool_timeout_s))
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    registry.register(StateCollector(sessions))
    compute = Compute(settings.train_executor)
    runner = JobRunner(sessions=sessions, settings=settings, compute=compute, metrics=metrics)
    scoring_ctx = ScoringContext(ModelCache(settings.model_cache_size), settings, metrics,
                                 np.random.default_rng())
    instance = InstanceName(settings.database_url, settings.instance_name)
    Gauge("lifeline_instance_name_clash", "1 while another live process holds this replica's "
          "LIFELINE_INSTANCE_NAME (app/instance.py)", registry=registry
          ).set_function(lambda: float(instance.clash))
    scheduler = Scheduler(sessions=sessions, settings=settings, runner=runner, instance=instance)
    return Services(settings, sessions, metrics, scoring_ctx, scheduler), compute


def create_app(settings: Settings | None = None, *, migrate_on_start: bool = True) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if migrate_on_start:
            migrate.upgrade(settings.database_url)
        torch.set_num_threads(settings.score_threads)
        reuse_freed_memory()  # batches reuse freed activations instead of faulting pages in anew
        svc, compute = build_services(settings)
        instance = svc.scheduler.instance
        app.state.services = svc
        with svc.sessions() as s:
            key = settings.bootstrap_operator_key
            ensure_bootstrap_key(s, key.get_secret_value() if key else None)
            if instance.hold() and (n := jobs.fail_interrupted(
                    s, instance=settings.instance_name)):
                log.warning("marked %d interrupted training jobs failed", n)
            for line_id, counted, rows in fresh_buffer.recount(s):
                log.warning("line %s: its buffer counter said %d windows, its rows are %d (a "
                            "restore without them?): corrected", line_id, counted, rows,
                            extra={"line_id": line_id})
        if settings.scheduler_enabled:
            svc.scheduler.start()
        yield
        compute.interrupt()  # a running retrain stops at its next epoch and is requeued
        svc.scheduler.shutdown()
        compute.shutdown()
        instance.release()

    app = FastAPI(title="Lifeline", version="1", lifespan=lifespan,
                  description="Lifelong-VAE anomaly detection for production lines")
    errors.install(app)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    for module in (health, lines, buffer, scoring, training, versions, anomalies, audit):
        app.include_router(module.router)
    return app

