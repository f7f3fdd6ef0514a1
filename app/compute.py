"""Where training jobs run, a spawned process or a thread, and what passes between the job's
thread and its worker while it trains: the worker's progress (so an operator sees a retrain of
minutes move) and two flags it checks between epochs: the service is stopping (it waited the
retrain out, and the job, left running, was failed at the next start), and an operator
cancelled the job."""

from __future__ import annotations

import math
import multiprocessing
import multiprocessing.synchronize
import threading
from collections.abc import Callable
from concurrent.futures import (
    BrokenExecutor,
    Executor,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
)
from typing import Any, Literal

# Shared memory that works across threads as across processes, so both executors share one path.
_ctx = multiprocessing.get_context("spawn")


Flag = threading.Event | multiprocessing.synchronize.Event


class Interrupted(Exception):
    """The service is stopping; the job goes back to the queue (app/trainer.py)."""


class Cancelled(Exception):
    """An operator cancelled the running job (app/jobs.py, cancel)."""


# The worker's side, installed by the executor's initializer in the thread that runs the jobs:
# inherited synchronisation objects cannot travel with each submitted call, and a thread-local
# keeps two apps in one process (tests) apart.
_worker = threading.local()


def _install(stop: Any, cancel: Any, progress: Any) -> None:
    _worker.stop, _worker.cancel, _worker.progress = stop, cancel, progress


def stop_requested() -> None:
    """Raises Interrupted once the service asked the worker to stop, Cancelled once the job's
    thread passed on an operator's cancel."""
    if (stop := getattr(_worker, "stop", None)) is not None and stop.is_set():
        raise Interrupted("the service is stopping; the job was put back in the queue")
    if (cancel := getattr(_worker, "cancel", None)) is not None and cancel.is_set():
        raise Cancelled("an operator cancelled the job")


def on_epoch(epoch: int, row: dict[str, float]) -> None:
    """The models.ProgressCallback of a job: counts fits (each starts at epoch 1), records the
    epoch, and stops the training when asked."""
    stop_requested()
    progress = getattr(_worker, "progress", None)
    if progress is None:
        return
    with progress.get_lock():
        progress[0] += epoch == 1
        progress[1], progress[2] = epoch, row.get("val_loss", math.nan)


class Compute:
    """One worker for model work. The process is the default: a retrain's torch threads and
    memory never touch the process that answers scoring requests."""

    def __init__(self, kind: Literal["process", "thread"]) -> None:
        self._stop: Flag = _ctx.Event()
        self._cancel: Flag = _ctx.Event()
        self._progress = _ctx.Array("d", 3)  # fits started, epoch, val_loss
        self._kind = kind
        self._executor = self._start()

    def _start(self) -> Executor:
        args = (self._stop, self._cancel, self._progress)
        if self._kind == "process":
            # spawn, not fork: a forked child would inherit torch's thread pools and DB sockets.
            return ProcessPoolExecutor(1, mp_context=_ctx, initializer=_install, initargs=args)
        return ThreadPoolExecutor(1, thread_name_prefix="lifeline-train", initializer=_install,
                                  initargs=args)

    def submit(self, fn: Callable[..., Any], /, **kwargs: Any) -> Future[Any]:
        """Run one job (the worker runs one at a time); its progress starts from nothing. A
        worker process that died (the kernel's out-of-memory killer) failed its own job; the
        pool it leaves refuses every later one, so the next job starts a new process."""
        self._cancel.clear()
        with self._progress.get_lock():
            self._progress[:] = [0.0, 0.0, math.nan]
        try:
            return self._executor.submit(fn, **kwargs)
        except BrokenExecutor:
            self._executor.shutdown(wait=True)
            self._executor = self._start()
            return self._executor.submit(fn, **kwargs)

    def progress(self) -> dict[str, float | None] | None:
        """The running job's fit (1 = the model served; then one more where a collapsed warm
        student brings one from scratch, and one per calibration fold for a first model or a
        new regime), its epoch and validation loss; None before its first epoch ends."""
        with self._progress.get_lock():
            fit, epoch, val_loss = self._progress[:]
        if fit == 0:
            return None
        return {"fit": int(fit), "epoch": int(epoch),
                "val_loss": round(val_loss, 3) if math.isfinite(val_loss) else None}

    def cancel(self) -> None:
        """Ask the running job to stop at its next epoch, and only that job."""
        self._cancel.set()

    def stopping(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds; True at once when the service is stopping."""
        return bool(self._stop.wait(timeout))

    def interrupt(self) -> None:
        """Ask the running job to stop at its next epoch; later jobs stop before they start."""
        self._stop.set()

    def shutdown(self) -> None:
        """Join the worker (prompt once interrupt() has stopped its job). Not waiting orphaned
        the spawned process: uvicorn re-raises SIGTERM after the lifespan ends, so the
        interpreter dies without the atexit hook that would tell an idle worker to exit."""
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._release()

    def _release(self) -> None:
        """The worker is gone: its two events and progress array (eleven named semaphores)
        swapped for in-process ones, so the originals are freed, and unlinked, now. No exit
        hook would (uvicorn re-raises SIGTERM), and the resource tracker then warned of
        "leaked semaphore objects" at every stop."""
        done = ThreadPoolExecutor(1)
        done.shutdown()  # a job submitted now is refused, as by the joined pool
        stopped = threading.Event()
        stopped.set()
        self._executor, self._stop, self._cancel = done, stopped, threading.Event()
        # typeshed allows multiprocessing's locks only; Array takes any with acquire/release
        self._progress = _ctx.Array("d", self._progress[:], lock=threading.RLock())  # type: ignore[call-overload]
