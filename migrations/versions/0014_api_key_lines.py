"""api_keys.lines: the lines a gateway key may post windows to (null: every line)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 16:30:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTER TABLE, never a batch copy (see 0002). Existing keys keep every line.
    op.add_column('api_keys', sa.Column('lines', sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column('api_keys', 'lines')
