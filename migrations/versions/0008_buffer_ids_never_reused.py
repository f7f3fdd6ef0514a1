"""buffer_windows ids never reused on SQLite (AUTOINCREMENT)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 04:30:00
"""
from collections.abc import Sequence

import numpy as np
import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Activating a version deletes the windows that trained it by their ids. SQLite, without
# AUTOINCREMENT, gives a new row the largest id in the table plus one: once a training emptied
# the buffer, new windows took the ids of windows long deleted, and a rollback to the version
# those trained deleted the fresh windows with them. PostgreSQL's sequence never reuses an id.
# Copying `buffer_windows` is safe where copying `lines` is not (0002): no table references it.
# The sequence starts past every id a version trained on, so no old list names a new window.

_versions = sa.table('model_versions', sa.column('trained_window_ids', sa.LargeBinary))


def upgrade() -> None:
    if op.get_bind().dialect.name != 'sqlite':
        return
    with op.batch_alter_table('buffer_windows', recreate='always',
                              table_kwargs={'sqlite_autoincrement': True}):
        pass
    conn = op.get_bind()
    trained = max((int(np.frombuffer(ids, dtype='<i8').max())
                   for (ids,) in conn.execute(sa.select(_versions.c.trained_window_ids)) if ids),
                  default=0)
    stored = conn.scalar(sa.text("SELECT coalesce(max(id), 0) FROM buffer_windows"))
    conn.execute(sa.text("DELETE FROM sqlite_sequence WHERE name = 'buffer_windows'"))
    conn.execute(sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES ('buffer_windows', :n)"),
                 {"n": max(trained, stored)})


def downgrade() -> None:
    if op.get_bind().dialect.name != 'sqlite':
        return
    with op.batch_alter_table('buffer_windows', recreate='always',
                              table_kwargs={'sqlite_autoincrement': False}):
        pass
