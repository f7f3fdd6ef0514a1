"""A backup of the embedded SQLite database that keeps the retention promise: the copy holds
lines, models, events, keys and the audit trail, and none of the fresh buffer's raw windows
(they live in the buffer alone, and only until the model they train serves)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path


def copy_without_buffer(database: Path, out: Path) -> int:
    """SQLite's online backup into `out`, then the buffered windows deleted from the copy and
    their pages zeroed (secure_delete) and dropped (VACUUM); the lines' counters say empty, as
    after a retrain. The copy's journal stays in memory: a journal file would hold the windows'
    pages until deleted, and a file deleted is not a file wiped. Returns the windows left out."""
    with closing(sqlite3.connect(database)) as src, closing(sqlite3.connect(out)) as dst:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode = MEMORY")
        dst.execute("PRAGMA secure_delete = ON")
        windows: int = dst.execute("SELECT count(*) FROM buffer_windows").fetchone()[0]
        with dst:
            dst.execute("DELETE FROM buffer_windows")
            dst.execute("UPDATE lines SET buffer_windows = 0, buffer_seen = 0")
        dst.execute("VACUUM")
    return windows
