"""Run one training job: buffer + teacher -> models.train_student -> calibrate -> gate ->
version (candidate or rejected) -> maybe activate. Scheduler -> job -> trainer -> registry."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import TimeoutError, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

import numpy as np
import torch
from sqlalchemy.orm import Session, sessionmaker

import models
from app import buffer, jobs, registry
from app.compute import Cancelled, Compute, Interrupted, on_epoch, stop_requested
from app.db import DB_DOWN, get_for_update, utcnow
from app.metrics import Metrics
from app.settings import Settings
from app.tables import Line, TrainingJob

log = logging.getLogger(__name__)
PROGRESS_S = 5.0


@dataclass(frozen=True)
class TrainOutcome:
    artifact: bytes
    passed: bool
    reasons: list[str]
    metrics: dict[str, Any]
    regimes: int
    threshold: float
    history: list[dict[str, float]] = field(default_factory=list)


def resolve_device(name: str) -> str:
    """The torch device of training jobs for LIFELINE_TRAIN_DEVICE. A CUDA device torch cannot
    see is refused when the service starts, not at the first retrain hours later."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        index = int(name.partition(":")[2] or 0)
        seen = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if index >= seen:
            raise ValueError(f"LIFELINE_TRAIN_DEVICE={name}, but torch sees {seen} CUDA "
                             "device(s) here: set it to auto or cpu")
    return name


def train_version(
    fresh: np.ndarray, teacher_artifact: bytes | None, *, new_regime: bool, target_far: float,
    max_epochs: int, seed: int, threads: int | None, device: str = "cpu",
    shape_only: tuple[int, ...] = (), principal_axes: bool = True, calibration_folds: int,
) -> TrainOutcome:
    """Pure model work, picklable, so it can run in a spawned process. The artifact is always
    saved from CPU tensors, so any replica can load it whatever device trained it. Raises
    Interrupted or Cancelled between epochs once the service is stopping or an operator
    cancelled the job (app/compute.py)."""
    stop_requested()
    if threads is not None:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    teacher = models.from_bytes(teacher_artifact) if teacher_artifact else None
    cfg = models.TrainConfig(max_epochs=max_epochs, seed=seed, device=device,
                             calibration_folds=calibration_folds, decorrelate=principal_axes)
    res = models.train_student(fresh, teacher, cfg, new_regime=new_regime, shape_only=shape_only,
                               callback=on_epoch)
    det = models.calibrate_detector(res.detector, res.heldout, target_far, teacher=teacher,
                                    out_of_fold=res.out_of_fold)
    report = models.gate(det, res.heldout, target_far, teacher=teacher, new_regime=new_regime)
    metrics: dict[str, Any] = {
        **report.metrics, "epochs": len(res.history), "train_windows": int(len(fresh)),
        "train_s": round(time.perf_counter() - t0, 3),
        "final_val_loss": res.history[-1]["val_loss"] if res.history else None,
        "cold_restart": res.cold_restart, "device": device,
        "out_of_fold_windows": int(len(res.out_of_fold)),
        "masked_outlier_values": res.masked_outliers,
        # indices; _register names them. The model cannot judge them (README, dead sensors).
        "silent_channels": np.flatnonzero(np.isnan(fresh).all(axis=(0, 1))).tolist(),
    }
    return TrainOutcome(models.to_bytes(det), report.passed, report.reasons, metrics,
                        det.regimes, det.threshold, res.history)


class JobRunner:
    """Runs claimed jobs: waits on the compute worker while renewing the lease, writing the
    job's progress and passing on an operator's cancel."""

    def __init__(self, *, sessions: sessionmaker[Session], settings: Settings,
                 compute: Compute, metrics: Metrics) -> None:
        self.sessions, self.settings, self.compute, self.metrics = (
            sessions, settings, compute, metrics)
        self.owner = settings.instance_name
        self.device = resolve_device(settings.train_device)

    def run(self, job_id: str) -> None:
        t0 = time.perf_counter()
        with self.sessions() as s:
            job = s.get(TrainingJob, job_id)
            line = get_for_update(s, Line, job.line_id) if job else None
            if job is None or line is None:
                log.warning("job %s: its line was deleted before it started", job_id)
                return
            # Taking the line's row lock waited for an operator's discard of buffered windows
            # in flight to commit; a later one finds this job running (app/buffer.py).
            s.commit()
            line_id, teacher = line.id, line.active_version
            ids, fresh = buffer.snapshot(s, line)
            _log_start(job, teacher, len(ids))
            # What the line decides; _compute adds what the service's settings decide.
            work = partial(
                train_version, fresh, self._active_artifact(s, line),
                new_regime=job.new_regime, target_far=line.target_false_alarm_rate,
                shape_only=tuple(line.channels.index(c) for c in line.shape_only_channels),
                principal_axes=line.principal_axes)
        try:
            outcome = self._compute(job_id, work)
            result = self._register_when_the_database_answers(job_id, line_id, outcome, ids,
                                                              teacher)
        except jobs.LeaseLost:
            log.warning("job %s: lease lost, result discarded", job_id)
            return
        except Interrupted:
            log.warning("job %s: stopped by the service's shutdown, back in the queue", job_id)
            self._close(jobs.requeue, job_id)
            return
        except Cancelled:
            log.info("job %s: cancelled by an operator", job_id)
            result = "cancelled"
            self._close(partial(jobs.finish, status="cancelled",
                                metrics={"progress": self.compute.progress()}), job_id)
        except Exception as exc:  # a crash leaves the previous model serving, buffer intact
            log.exception("job %s failed", job_id)
            result = "failed"
            self._close(partial(jobs.finish, status="failed",
                                error=f"{type(exc).__name__}: {exc}"[:2000]), job_id)
        self.metrics.retrains.labels(line_id, result).inc()
        self.metrics.retrain_duration.labels(line_id).observe(time.perf_counter() - t0)

    def _active_artifact(self, s: Session, line: Line) -> bytes | None:
        if line.active_version is None:
            return None
        return registry.get_version(s, line.id, line.active_version).artifact

    def _compute(self, job_id: str, work: partial[TrainOutcome]) -> TrainOutcome:
        threads = self.settings.train_threads if self.settings.train_executor == "process" else None
        fut = self.compute.submit(
            work, max_epochs=self.settings.train_max_epochs, seed=self.settings.train_seed,
            threads=threads, device=self.device, calibration_folds=self.settings.calibration_folds)
        poll = self._poll_s
        while True:
            try:
                return fut.result(timeout=poll)
            except TimeoutError:
                try:
                    self._renew(job_id)
                except jobs.LeaseLost:  # reaped by another replica, or its line deleted
                    self.compute.cancel()
                    wait([fut])  # stops at its next epoch; the worker is then free again
                    raise
                except DB_DOWN as exc:  # the lease stands until it expires: go on training
                    log.warning("job %s: lease not renewed, the database did not answer "
                                "(%s); trying again in %.0f s", job_id, type(exc).__name__,
                                poll)
            except BrokenProcessPool as exc:
                raise RuntimeError("the training process died (out of memory?)") from exc

    @property
    def _poll_s(self) -> float:
        """Every PROGRESS_S (or a third of the lease, if shorter) a running job renews its
        lease, writes its progress and reads back a cancel; a trained one retries a
        database that did not answer."""
        return min(PROGRESS_S, self.settings.job_lease_s / 3)

    def _renew(self, job_id: str) -> None:
        """Renew the lease, write the progress, and pass on an operator's cancel."""
        progress = self.compute.progress()
        with self.sessions() as s:
            if jobs.heartbeat(s, job_id=job_id, owner=self.owner,
                              lease_s=self.settings.job_lease_s,
                              metrics={"progress": progress} if progress else None):
                self.compute.cancel()

    def _register_when_the_database_answers(self, job_id: str, line_id: str, out: TrainOutcome,
                                            ids: np.ndarray, teacher: int | None) -> str:
        """The model is trained: a database that does not answer (a restart, a failover)
        keeps it waiting, for as long as the job's lease, rather than throwing the training
        away. _register is one transaction, so a try that failed left nothing behind."""
        poll = self._poll_s
        deadline = time.monotonic() + self.settings.job_lease_s
        while True:
            try:
                return self._register(job_id, line_id, out, ids, teacher)
            except DB_DOWN as exc:
                if time.monotonic() + poll > deadline:
                    raise
                log.warning("job %s: trained, the database did not answer (%s); trying "
                            "again in %.0f s", job_id, type(exc).__name__, poll)
            if self.compute.stopping(poll):
                raise Interrupted("the service is stopping; the job was put back in the queue")

    def _register(self, job_id: str, line_id: str, out: TrainOutcome, ids: np.ndarray,
                  teacher: int | None) -> str:
        """The new version, its parent the teacher it learned from. It is promoted (when the
        line promotes automatically) only if that teacher still serves: an operator who rolled
        back while it trained rejected what it was taught."""
        with self.sessions() as s:
            line = get_for_update(s, Line, line_id)
            if line is None:  # deleted while the job ran, and the job with it
                raise jobs.LeaseLost(job_id)
            # Locked, so a cancel either lands before this (no version) or finds the job ended.
            job = get_for_update(s, TrainingJob, job_id)
            if job is None:
                raise jobs.LeaseLost(job_id)
            if job.cancel_requested_at is not None:
                jobs.finish(s, job_id=job_id, owner=self.owner, status="cancelled")
                s.commit()
                return "cancelled"
            metrics = {**out.metrics, "silent_channels": [
                line.channels[i] for i in out.metrics["silent_channels"]]}
            promote = out.passed and line.promotion == "auto"
            if line.active_version != teacher:
                promote = False
                metrics["not_promoted"] = (
                    f"version {line.active_version} was activated while this one learned from "
                    f"version {teacher}; activate it by hand if it should serve")
            status = "candidate" if out.passed else "rejected"
            row = registry.create_version(
                s, line=line, parent_version=teacher, artifact=out.artifact, status=status,
                regimes=out.regimes, threshold=out.threshold, metrics=metrics,
                reasons=out.reasons, trained_ids=ids, job_id=job_id)
            deleted = 0
            if promote:
                deleted = registry.activate(s, line=line, row=row)
            registry.prune(s, line=line, keep=self.settings.keep_versions)
            line.last_trained_at = utcnow()
            status = "succeeded" if out.passed else "rejected"
            jobs.finish(s, job_id=job_id, owner=self.owner, status=status,
                        model_version=row.version, error="; ".join(out.reasons) or None,
                        metrics={**metrics, "buffer_deleted": deleted,
                                 "history": out.history[-50:], "gate_reasons": out.reasons})
            why = (metrics.get("not_promoted") or "; ".join(out.reasons)
                   or f"the line's promotion is {line.promotion}")
            ended = (job_id, line_id, job.started_at, row.version, row.status)
            s.commit()  # the version, the activation, the deletion and the job close together
        _log_end(*ended, activated=promote, deleted=deleted, why=why)
        return status

    def _close(self, close: Callable[..., None], job_id: str) -> None:
        """End (or requeue) the job if it is still ours; a reaped one belongs to its taker."""
        with self.sessions() as s:
            try:
                close(s, job_id=job_id, owner=self.owner)
                s.commit()
            except jobs.LeaseLost:
                s.rollback()


def _log_start(job: TrainingJob, teacher: int | None, windows: int) -> None:
    what = ("its first model" if teacher is None else
            f"a new regime onto version {teacher}" if job.new_regime else
            f"a student of version {teacher}")
    log.info("job %s: line %s trains %s on %d buffered windows (%s)", job.id, job.line_id, what,
             windows, job.trigger, extra={"line_id": job.line_id, "job_id": job.id,
                                          "teacher": teacher, "windows": windows})


def _log_end(job_id: str, line_id: str, started: datetime | None, version: int, status: str,
             *, activated: bool, deleted: int, why: str) -> None:
    """One line an operator reads without the API: the new version, and whether it serves."""
    seconds = (utcnow() - started).total_seconds() if started is not None else 0.0
    outcome = (f"activated, {deleted} buffered windows deleted" if activated else
               f"{status}, not serving: {why}")
    log.info("job %s: line %s version %d %s (%.0f s)", job_id, line_id, version, outcome,
             seconds, extra={"line_id": line_id, "job_id": job_id, "version": version,
                             "activated": activated, "seconds": round(seconds, 1)})
