"""Seeded runs side by side, one process per core, for tests that average over seeds."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any, TypeVar

import torch

R = TypeVar("R")


def spread(run: Callable[..., R], calls: Sequence[tuple[Any, ...]]) -> list[R]:
    """`run(*args)` for each of `calls`, in order. The tests' models are small: a second
    thread gains them little and a second process almost twice (test_retention's nine runs:
    73 s with two threads, 45 s in two single-threaded processes, the same figures). `run`
    must be a module-level function (the workers are spawned, not forked from a process
    that holds torch's threads)."""
    workers = min(len(calls), os.cpu_count() or 1, 4)
    if workers < 2:
        return [run(*args) for args in calls]
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"),
                             initializer=torch.set_num_threads, initargs=(1,)) as pool:
        return list(pool.map(run, *zip(*calls, strict=True)))
