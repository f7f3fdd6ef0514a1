"""Engine, sessions and the declarative base."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import JSON, DateTime, MetaData, create_engine, event, func, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

T = TypeVar("T")
log = logging.getLogger(__name__)
# The database did not answer (down, restarting, unreachable, no pooled connection free in
# time), as against a statement it refused.
DB_DOWN = (OperationalError, InterfaceError, PoolTimeout)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def db_now(session: Session) -> datetime:
    """The database's clock, the one every replica shares: leases are set and judged by it, so
    a replica whose own clock runs fast does not take live jobs from the others. SQLite is
    embedded, its clock this host's."""
    if session.get_bind().dialect.name == "sqlite":
        return utcnow()
    return session.execute(select(func.now())).scalar_one().astimezone(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on every backend (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


def make_engine(url: str, *, pool_timeout_s: float = 30.0) -> Engine:
    """`pool_timeout_s`: how long a request waits for a free pooled connection before it is
    answered 503 (app/errors.py)."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                               pool_timeout=pool_timeout_s)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20,
                         pool_timeout=pool_timeout_s)


def _sqlite_pragmas(conn: Any, _record: Any) -> None:
    # WAL lets readers run beside the single writer; busy_timeout waits instead of failing.
    cur = conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    # Deleted rows are overwritten with zeros, not left in free pages: a deleted raw window
    # stays readable in the file otherwise (tests/app/test_buffer.py).
    cur.execute("PRAGMA secure_delete=ON")
    cur.close()


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


_WIPE = "lifeline.wipe_deleted"  # a flag in Session.info


def wipe_on_commit(session: Session) -> None:
    """This transaction deletes raw windows: once it commits, wipe them from the disk too.

    On SQLite the zeroed pages are copied into the database file and the write-ahead log,
    whose older frames still hold the windows as they were written, is emptied. PostgreSQL has
    no such control: a deleted row stays in the table's free space until VACUUM lets a later
    write reuse it (README, retention)."""
    session.info[_WIPE] = True


@event.listens_for(Session, "after_commit")
def _wipe_committed(session: Session) -> None:
    if session.info.pop(_WIPE, False):
        _empty_sqlite_log(session.get_bind())


@event.listens_for(Session, "after_rollback")
def _nothing_to_wipe(session: Session) -> None:
    session.info.pop(_WIPE, None)


def _empty_sqlite_log(bind: Engine | Connection) -> None:
    """Best effort: the deletion has committed, and a reader holding the log only delays its
    emptying to the next deletion."""
    if bind.dialect.name != "sqlite":
        return
    try:
        with bind.engine.connect() as conn:
            busy = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()[0]
    except OperationalError as exc:
        busy = str(exc)
    if busy:
        log.warning("deleted windows stay in the SQLite log until its next emptying: %s", busy)


def get_for_update(session: Session, entity: type[T], key: Any) -> T | None:
    """The row, locked until the transaction ends, its attributes read afresh.

    SQLite compiles FOR UPDATE away, and its driver opens a transaction only at the first
    write, so two requests could read the same counters and write back one result: eight
    threads posting to one line lost 266 of 340 dropped-window counts and kept 63 windows in a
    buffer of 60. There the lock is the database's single writer, taken before reading
    (BEGIN IMMEDIATE, waiting up to busy_timeout); a session that has written already holds it.
    """
    take_sqlite_writer(session)
    # FOR NO KEY UPDATE: it excludes every other locker and writer of the row, but not an
    # insert that only references it (a job for the line, whose foreign key check takes KEY
    # SHARE); FOR UPDATE would make such an insert wait, and deadlock against it.
    return session.get(entity, key, with_for_update={"key_share": True}, populate_existing=True)


def take_sqlite_writer(session: Session) -> None:
    """On SQLite, become the single writer before reading what this transaction will change
    (FOR UPDATE's stand-in there); on other databases nothing: lock the rows instead."""
    conn = session.connection()
    driver = conn.connection.dbapi_connection
    if conn.dialect.name == "sqlite" and driver is not None and not driver.in_transaction:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
