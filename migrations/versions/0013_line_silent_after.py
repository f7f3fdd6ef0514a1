"""lines.silent_after_s: how long a line may go without a window before it counts as silent

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 13:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTER TABLE, never a batch copy (see 0002). Existing lines take the 15 minutes the
    # LifelineLineSilent alert used for every line until now.
    op.add_column('lines', sa.Column('silent_after_s', sa.Integer(), nullable=False,
                                     server_default='900'))


def downgrade() -> None:
    op.drop_column('lines', 'silent_after_s')
