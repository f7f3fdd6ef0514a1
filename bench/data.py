"""Loaders for the real data in ../shared/data (read-only, never copied into the repo)."""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
SKAB_TRAIN_ROWS = 400  # official outlier-detection protocol: the first 400 rows are training
TEP_ONSET = 160  # faults are introduced after sample 160 of every dNN_te.dat
# SKAB's Temperature and Thermocouple: the rig warms for hours, so an operator who knows it would
# mark them shape-only (a line's `shape_only_channels`); session 7 traced two thirds of the
# default's false-alarm score to them.
SKAB_THERMAL = (4, 5)
TEP_EXCLUDED = (3, 9, 15)  # practically undetectable; excluded from the mean, as in the papers


def skab_files(root: Path = DATA / "skab") -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, values [n, 8], anomaly labels [n]) for every labelled SKAB file, in a fixed order."""
    out = []
    for folder in ("valve1", "valve2", "other"):
        for path in sorted((root / folder).glob("*.csv"), key=lambda p: int(p.stem)):
            with path.open() as f:
                rows = list(csv.reader(f, delimiter=";"))
            head, body = rows[0], rows[1:]
            meta = ("datetime", "anomaly", "changepoint")
            cols = [i for i, h in enumerate(head) if h not in meta]
            x = np.array([[float(r[i]) for i in cols] for r in body], dtype=np.float32)
            y = np.array([float(r[head.index("anomaly")]) for r in body]) > 0.5
            out.append((f"{folder}/{path.name}", x, y))
    return out


def skab_seconds(name: str, root: Path = DATA / "skab") -> np.ndarray:
    """Each row's time in seconds from the file's first (the rig logs at about 1 Hz, with a few
    gaps of seconds to minutes): what the service would see as the windows' starts."""
    with (root / name).open() as f:
        stamps = [datetime.fromisoformat(r[0]) for r in list(csv.reader(f, delimiter=";"))[1:]]
    return np.array([(t - stamps[0]).total_seconds() for t in stamps])


def skab_anomaly_free(root: Path = DATA / "skab") -> np.ndarray:
    """SKAB's anomaly-free run as rows [n, 8], in the labelled files' channel order."""
    with (root / "anomaly-free" / "anomaly-free.csv").open() as f:
        rows = list(csv.reader(f, delimiter=";"))[1:]
    return np.array([[float(v) for v in r[1:]] for r in rows], dtype=np.float32)


def tep(name: str, root: Path = DATA / "tep") -> np.ndarray:
    """A TEP file as rows [n, 52]; d00.dat is stored transposed (52 x 500)."""
    x = np.loadtxt(root / name, dtype=np.float32)
    return x.T if x.shape[0] == 52 and x.shape[1] != 52 else x


def sliding(x: np.ndarray, window: int) -> np.ndarray:
    """Windows [n - window + 1, window, C] ending at every row from window - 1 on."""
    v = np.lib.stride_tricks.sliding_window_view(x, window, axis=0)  # [n', C, window]
    return np.ascontiguousarray(v.transpose(0, 2, 1))
