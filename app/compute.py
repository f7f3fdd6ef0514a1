"""Where training jobs run, a spawned process or a thread, and how a stopping service stops
the one running: a stop flag its worker checks between epochs. Without it a restart waited
for the whole retrain (minutes) and the job, left running, was failed at the next start."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any, Literal, Protocol


class Interrupted(Exception):
    """The service is stopping; the job goes back to the queue (app/trainer.py)."""


class _Flag(Protocol):
    def is_set(self) -> bool: ...
    def set(self) -> None: ...


# The worker's stop flag, set by the executor's initializer in the thread that runs the jobs:
# an inherited multiprocessing.Event cannot travel with each submitted call, and a thread-local
# keeps two apps in one process (tests) from sharing one.
_worker = threading.local()


def _install(stop: _Flag) -> None:
    _worker.stop = stop


def stop_requested(epoch: int = 0, row: dict[str, float] | None = None) -> None:
    """A models.ProgressCallback: raises Interrupted once the service asked the worker to stop."""
    stop: _Flag | None = getattr(_worker, "stop", None)
    if stop is not None and stop.is_set():
        raise Interrupted("the service is stopping; the job was put back in the queue")


class Compute:
    """One worker for model work. The process is the default: a retrain's torch threads and
    memory never touch the process that answers scoring requests."""

    def __init__(self, kind: Literal["process", "thread"]) -> None:
        self._stop: _Flag
        self._executor: Executor
        if kind == "process":
            # spawn, not fork: a forked child would inherit torch's thread pools and DB sockets.
            ctx = multiprocessing.get_context("spawn")
            self._stop = ctx.Event()
            self._executor = ProcessPoolExecutor(1, mp_context=ctx, initializer=_install,
                                                 initargs=(self._stop,))
        else:
            self._stop = threading.Event()
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="lifeline-train",
                                                initializer=_install, initargs=(self._stop,))

    def submit(self, fn: Callable[..., Any], /, **kwargs: Any) -> Future[Any]:
        return self._executor.submit(fn, **kwargs)

    def interrupt(self) -> None:
        """Ask the running job to stop at its next epoch; later jobs stop before they start."""
        self._stop.set()

    def shutdown(self) -> None:
        """Join the worker (prompt once interrupt() has stopped its job). Not waiting orphaned
        the spawned process: uvicorn re-raises SIGTERM after the lifespan ends, so the
        interpreter dies without the atexit hook that would tell an idle worker to exit."""
        self._executor.shutdown(wait=True, cancel_futures=True)
