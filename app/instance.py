"""One live process per instance name. A replica's name owns its jobs' leases, and a start fails
the jobs its name left running (app/jobs.py): two live replicas given one name (a copied
environment, a scaled deployment with a fixed LIFELINE_INSTANCE_NAME) would fail each other's
retrains at every start, each with a misleading "interrupted by a restart".

On PostgreSQL the name is held as a session-level advisory lock, on a connection of its own
for the process's life; a process that dies drops its connection, and the lock with it. A
process that finds its name held skips failing that name's jobs (the reaper requeues a dead
owner's job once its lease runs out), says so in the log and in `lifeline_instance_name_clash`,
and tries again every scheduler tick: a holder on a machine that died stays until PostgreSQL's
keepalive probes drop its connection, about a minute. SQLite serves one host, where the
default name (host:pid) is unique."""

from __future__ import annotations

import contextlib
import logging

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.pool import NullPool

from app.db import DB_DOWN

log = logging.getLogger(__name__)

# Keyed by schema too: two deployments may share one database, each in its own schema.
_TRY_LOCK = text("SELECT pg_try_advisory_lock(hashtextextended("
                 "'lifeline-instance:' || current_schema() || ':' || :name, 0))")


class InstanceName:
    def __init__(self, url: str, name: str) -> None:
        self.name = name
        self._engine = None if url.startswith("sqlite") else create_engine(url, poolclass=NullPool)
        self._conn: Connection | None = None
        self.clash = False  # True while another live process holds the name

    def hold(self) -> bool:
        """Whether this process holds its name now, taking it if it is free; False (and
        `clash`) while another live process holds it. A database that does not answer leaves
        the last answer standing."""
        if self._engine is None:
            return True
        try:
            if self._conn is not None:
                self._conn.execute(text("SELECT 1")).close()  # still ours, still connected
                self._conn.commit()
                return True
        except DB_DOWN:
            self._drop()
        try:
            conn = self._engine.connect()
            # The server probes this connection's peer, so that a holder whose machine died
            # (no FIN ever sent) frees the name in about a minute, not the OS's two hours.
            conn.execute(text("SET tcp_keepalives_idle = 30; SET tcp_keepalives_interval = 10; "
                              "SET tcp_keepalives_count = 3"))
            held = bool(conn.scalar(_TRY_LOCK, {"name": self.name}))
            conn.commit()  # the lock is the session's: it outlives the transaction
        except DB_DOWN:
            return not self.clash
        if held:
            self._conn = conn
        else:
            conn.close()
        if self.clash != (not held):
            (log.info if held else log.error)(
                "LIFELINE_INSTANCE_NAME %r %s", self.name,
                "is now this process's" if held else "is held by another live process: give "
                "each replica its own name; until then its leftover jobs wait for the reaper")
        self.clash = not held
        return held

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(*DB_DOWN):  # a broken connection closes all the same
                self._conn.close()
        self._conn = None

    def release(self) -> None:
        self._drop()
        if self._engine is not None:
            self._engine.dispose()
