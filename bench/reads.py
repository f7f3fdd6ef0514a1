"""What a dashboard and an operator's console read, with many lines: the scrape, the list of
lines, one line, its versions. Each version holds a model and the ids of the 20,000 windows
that trained it, as after a line's retrains at the default buffer bound.

    python -m bench.reads [--lines 40] [--versions 5] [--pg URL]

In process (the ASGI app through its test client), median of 15 calls after one warm-up, on
SQLite and, where one answers, on PostgreSQL (a schema made for the run and dropped after).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

import models
from app import migrate, registry
from app.auth import create_key
from app.db import make_engine, make_sessionmaker, utcnow
from app.main import create_app
from app.settings import Settings
from app.tables import Line
from bench.server import scratch_schema, temp_sqlite

KEY = "bench-reads-key-0123456789"
PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def prepare(url: str, n_lines: int, n_versions: int, channels: int = 8, window: int = 32
            ) -> int:
    """Lines with `n_versions` versions each, the last active; returns the artifact's bytes."""
    x = np.random.default_rng(0).normal(size=(300, window, channels)).astype(np.float32)
    art = models.to_bytes(models.train_student(
        x, None, models.TrainConfig(max_epochs=2, seed=0)).detector)
    migrate.upgrade(url)
    with make_sessionmaker(make_engine(url))() as s:
        create_key(s, role="viewer", name="bench", actor="bench", key=KEY)
        for i in range(n_lines):
            line = Line(id=f"l{i}", channels=[f"c{j}" for j in range(channels)], window=window,
                        retrain_interval_s=86_400, min_windows=100, promotion="auto",
                        target_false_alarm_rate=0.01, buffer_limit=20_000,
                        active_version=None, last_trained_at=utcnow())
            s.add(line)
            s.flush()
            for v in range(n_versions):
                row = registry.create_version(
                    s, line=line, parent_version=line.active_version, artifact=art,
                    status="candidate", regimes=1, threshold=1.0, metrics={}, reasons=[],
                    trained_ids=np.arange(20_000) + 20_000 * v, job_id=None)
                registry.activate(s, line=line, row=row)
        s.commit()
    return len(art)


def median_ms(call: Callable[[], object], n: int = 15) -> float:
    call()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def measure(url: str) -> dict[str, float]:
    app = create_app(Settings(database_url=url, scheduler_enabled=False),
                     migrate_on_start=False)
    auth = {"Authorization": f"Bearer {KEY}"}
    with TestClient(app) as c:
        def get(path: str) -> Callable[[], object]:
            return lambda: c.get(path, headers=auth).raise_for_status()
        return {path: median_ms(get(path)) for path in (
            "/metrics", "/v1/lines", "/v1/lines/l0", "/v1/lines/l0/models")}


@contextmanager
def pg_schema(base: str) -> Iterator[str | None]:
    """A scratch schema, or None (said) where no PostgreSQL answers."""
    try:
        with create_engine(base).connect() as c:
            c.execute(text("SELECT 1"))
    except Exception as exc:  # no PostgreSQL here: SQLite alone
        print(f"(no PostgreSQL at {base}: {type(exc).__name__}; SQLite only)")
        yield None
        return
    with scratch_schema(base, "lifeline_bench") as url:
        yield url


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lines", type=int, default=40)
    p.add_argument("--versions", type=int, default=5)
    p.add_argument("--pg", default=PG)
    a = p.parse_args()
    rows: dict[str, dict[str, float]] = {}
    sqlite = temp_sqlite()
    size = prepare(sqlite, a.lines, a.versions)
    rows["SQLite"] = measure(sqlite)
    with pg_schema(a.pg) as pg:
        if pg is not None:
            prepare(pg, a.lines, a.versions)
            rows["PostgreSQL"] = measure(pg)
    paths = list(next(iter(rows.values())))
    print(f"\n{a.lines} lines x {a.versions} versions (model {size / 1e3:.0f} kB, 20,000 trained "
          "ids each), median ms per call\n")
    print("| database | " + " | ".join(f"`GET {p}`" for p in paths) + " |")
    print("|---|" + "---|" * len(paths))
    for db, ms in rows.items():
        print(f"| {db} | " + " | ".join(f"{ms[p]:.1f}" for p in paths) + " |")


if __name__ == "__main__":
    main()
