"""lines.shape_only_channels: channels judged by their shape within a window, not their level

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 14:20:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ALTER TABLE, never a batch copy of `lines` (see 0002): existing lines get an empty list.


def upgrade() -> None:
    op.add_column('lines', sa.Column('shape_only_channels', sa.JSON(), nullable=False,
                                     server_default=sa.text("'[]'")))


def downgrade() -> None:
    op.drop_column('lines', 'shape_only_channels')
