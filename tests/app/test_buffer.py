"""The fresh buffer's reservoir keeps a uniform sample of everything offered, whether windows
arrive one per request (victims found by their place in the index) or in batches (one
shuffle)."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import delete

from app import buffer
from app.db import make_engine, make_sessionmaker
from app.tables import BufferWindow, Line

LIMIT, OFFERED, RUNS = 10, 100, 24


@pytest.mark.parametrize("batch", [1, 20])
def test_the_reservoir_keeps_each_offered_window_equally_likely(db_url: str, batch: int
                                                                ) -> None:
    sessions = make_sessionmaker(make_engine(db_url))
    rng = np.random.default_rng(0)
    kept_at = np.zeros(OFFERED, int)  # how often the i-th window offered was kept
    with sessions() as s:
        line = Line(id="r", channels=["a"], window=4, retrain_interval_s=60, min_windows=20,
                    promotion="auto", target_false_alarm_rate=0.01, buffer_limit=LIMIT,
                    active_version=None, last_trained_at=None)
        s.add(line)
        s.commit()
        for _ in range(RUNS):
            s.execute(delete(BufferWindow))
            line.buffer_seen = line.buffer_dropped = 0
            for i in range(0, OFFERED, batch):
                x = np.arange(i, i + batch, dtype=np.float32)[:, None, None].repeat(4, 1)
                buffer.append(s, line, x, [None] * batch, rng)
                s.commit()
            _, windows = buffer.snapshot(s, line)
            assert windows.shape == (LIMIT, 4, 1)
            kept_at[windows[:, 0, 0].astype(int)] += 1
    assert line.buffer_dropped == OFFERED - LIMIT
    # Each tenth of the arrivals: 24 runs x 10 kept x 1/10 = 24 expected, sd about 4.6.
    per_tenth = kept_at.reshape(10, -1).sum(axis=1)
    assert (abs(per_tenth - RUNS) <= 14).all(), per_tenth
