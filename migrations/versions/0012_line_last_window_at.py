"""lines.last_window_at: when a window for the line last arrived, so a silent line shows

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 11:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTER TABLE, never a batch copy (see 0002). Existing lines start unknown (NULL)
    # and are stamped by their next window.
    op.add_column('lines', sa.Column('last_window_at', sa.DateTime(timezone=True),
                                     nullable=True))


def downgrade() -> None:
    op.drop_column('lines', 'last_window_at')
