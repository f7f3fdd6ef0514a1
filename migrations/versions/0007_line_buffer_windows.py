"""lines.buffer_windows: the fresh buffer's size, kept under the line's lock instead of counted

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 04:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTER TABLE, never a batch copy (see 0002); the default fills the existing rows,
    # which the count then corrects.
    op.add_column('lines', sa.Column('buffer_windows', sa.Integer(), nullable=False,
                                     server_default='0'))
    op.execute("UPDATE lines SET buffer_windows = (SELECT count(*) FROM buffer_windows "
               "WHERE buffer_windows.line_id = lines.id)")


def downgrade() -> None:
    op.drop_column('lines', 'buffer_windows')
