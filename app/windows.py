"""A posted batch checked against its line's shape: windows as one float32 array [N, T, C]
(null and NaN = missing), or a 422 that names the window, row or value to fix."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import numpy as np

from app.errors import ApiError
from app.schemas.scoring import FastScoreRequest, ScoreRequest


class Shape(Protocol):
    """What a batch is checked against: a Line, or this process's last view of one."""

    @property
    def id(self) -> str: ...
    @property
    def window(self) -> int: ...
    @property
    def channels(self) -> list[str]: ...


def to_array(req: ScoreRequest, line: Shape) -> np.ndarray:
    """Windows as float32 [N, T, C] (null -> NaN), or a 422 naming the first bad window/row."""
    t, c = line.window, len(line.channels)
    for i, w in enumerate(req.windows):
        if len(w.values) != t:
            raise ApiError(422, "invalid_window_shape",
                           f"windows[{i}] has {_count(len(w.values), 'row')}; line {line.id!r} "
                           f"needs {t} rows of {c} values ({', '.join(line.channels)})",
                           {"window": i, "rows": len(w.values), "expected_rows": t})
        for j, row in enumerate(w.values):
            if len(row) != c:
                raise ApiError(422, "invalid_window_shape",
                               f"windows[{i}].values[{j}] has {_count(len(row), 'value')}; "
                               f"expected {c} in the order {line.channels}",
                               {"window": i, "row": j, "values": len(row), "expected": c})
    return np.array([w.values for w in req.windows], dtype=np.float32)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def check_array(x: np.ndarray, line: Shape) -> np.ndarray:
    """A binary batch: float [N, T, C] with NaN for missing values, or a 422 saying so."""
    t, c = line.window, len(line.channels)
    if x.ndim != 3 or x.shape[1:] != (t, c) or x.shape[0] == 0:
        raise ApiError(422, "invalid_window_shape",
                       f"the array has shape {list(x.shape)}; line {line.id!r} needs "
                       f"[N, {t}, {c}] (windows x steps x channels {line.channels})",
                       {"shape": list(x.shape), "expected": [None, t, c]})
    if not np.issubdtype(x.dtype, np.floating):
        raise ApiError(422, "invalid_dtype", f"array dtype {x.dtype}; send float32 or float64")
    with np.errstate(over="ignore"):  # checked after the cast: 1e39 becomes inf there
        x32 = x.astype(np.float32, copy=False)
    if np.isinf(x32).any():
        i, j, k = (int(v) for v in np.argwhere(np.isinf(x32))[0])
        raise ApiError(422, "invalid_values",
                       f"windows[{i}] row {j}, channel {line.channels[k]!r}: {x[i, j, k]} is "
                       "infinite or beyond float32's range (about +-3.4e38); send null (NaN) "
                       "for a missing value", {"window": i, "row": j, "channel": line.channels[k]})
    return x32


@dataclass(frozen=True)
class Batch:
    windows: np.ndarray  # [N, T, C] float32, NaN = missing
    starts: list[datetime | None]
    batch_id: str | None = None
    learn: bool = True


def from_fast_request(req: FastScoreRequest, line: Shape, values: np.ndarray | None,
                      validate: Callable[[], ScoreRequest]) -> Batch:
    """The batch as one array (`values` when the body was decoded straight into it); when its
    shape does not fit the line, the full schema and row checks name the culprit."""
    x = values
    if x is None:
        try:
            x = np.array([w.values for w in req.windows], dtype=np.float32)  # null -> NaN
        except (ValueError, TypeError):
            x = None
    if x is None or x.ndim != 3 or x.shape[1:] != (line.window, len(line.channels)):
        x = to_array(validate(), line)  # a 422 naming the bad element, window or row
    return Batch(check_array(x, line), [w.start for w in req.windows], req.batch_id, req.learn)
