"""A real uvicorn server on loopback for benchmarks, with lines and models prepared directly in
its database, and load generators that run in another process."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
from sqlalchemy import create_engine, text

from app import migrate, registry
from app.auth import create_key
from app.db import make_engine, make_sessionmaker, utcnow
from app.tables import Line
from models import Detector, to_bytes

KEY = "bench-operator-key"


def prepare(url: str, det: Detector, lines: list[str], channels: int, window: int,
            buffer_limit: int = 20_000) -> None:
    """Lines with `det` active, and the operator key, written straight into the database."""
    migrate.upgrade(url)
    sessions = make_sessionmaker(make_engine(url))
    with sessions() as s:
        create_key(s, role="operator", name="bench", actor="bench", key=KEY)
        for name in lines:
            line = Line(id=name, channels=[f"c{i}" for i in range(channels)], window=window,
                        retrain_interval_s=86_400, min_windows=100, promotion="auto",
                        target_false_alarm_rate=0.01, buffer_limit=buffer_limit,
                        active_version=None, last_trained_at=utcnow())  # trained just now: not due
            s.add(line)
            s.flush()
            row = registry.create_version(
                s, line=line, parent_version=None, artifact=to_bytes(det), status="candidate",
                regimes=det.regimes, threshold=det.threshold, metrics={}, reasons=[],
                trained_ids=np.zeros(0, int), job_id=None)
            registry.activate(s, line=line, row=row)
        s.commit()


class Server:
    def __init__(self, url: str, port: int, **env: str) -> None:
        self.port = port
        self.env = {**os.environ, "LIFELINE_DATABASE_URL": url, "LIFELINE_PORT": str(port),
                    "LIFELINE_TICK_SECONDS": "1", **env}
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        # its own process group, so that a training child it spawned goes with it (__exit__)
        self.proc = subprocess.Popen([sys.executable, "-m", "app.cli", "serve"], env=self.env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if httpx.get(f"{self.base}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("server did not become ready")

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        # Before session 22 a retrain's spawned child outlived the server and took CPU from
        # the next measurement; the server now stops and joins it (app/compute.py), and this
        # stays so that no bench run can leave one behind.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss_mb(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")


def npy_bytes(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(x, dtype=np.float32))
    return buf.getvalue()


def json_bytes(x: np.ndarray, learn: bool = False) -> bytes:
    return json.dumps({"learn": learn, "windows": [{"values": w.tolist()} for w in x]}).encode()


def closed_loop(url: str, body: bytes, ctype: str, workers: int, seconds: float
                ) -> list[float]:
    """Latencies (s) of requests sent back to back by `workers` threads for `seconds`."""
    lat: list[float] = []
    lock = threading.Lock()
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": ctype}

    def run() -> None:
        with httpx.Client(timeout=30) as c:
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                t = time.perf_counter()
                r = c.post(url, content=body, headers=headers)
                r.raise_for_status()
                with lock:
                    lat.append(time.perf_counter() - t)

    threads = [threading.Thread(target=run) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return lat


def paced(url: str, body: bytes | list[bytes], ctype: str, rate: float, seconds: float
          ) -> list[float]:
    """Latencies of requests sent at a steady `rate` per second (open loop, one thread); a
    list of bodies is sent in turn."""
    bodies = body if isinstance(body, list) else [body]
    lat: list[float] = []
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": ctype}
    with httpx.Client(timeout=30) as c:
        start = time.perf_counter()
        for i in range(int(rate * seconds)):
            wait = start + i / rate - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            t = time.perf_counter()
            c.post(url, content=bodies[i % len(bodies)], headers=headers).raise_for_status()
            lat.append(time.perf_counter() - t)
    return lat


@contextlib.contextmanager
def scratch_schema(base: str, prefix: str) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL schema on `base`, dropped afterwards."""
    schema = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{base}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def temp_sqlite() -> str:
    return f"sqlite:///{tempfile.mkdtemp(prefix='lifeline-bench-')}/bench.db"
