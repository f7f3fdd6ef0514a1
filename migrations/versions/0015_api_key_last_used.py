"""api_keys.last_used_at: when a request last came with the key (null: never since 0015)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 17:30:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0015'
down_revision: str | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTER TABLE, never a batch copy (see 0002).
    op.add_column('api_keys', sa.Column('last_used_at', sa.DateTime(timezone=True),
                                        nullable=True))


def downgrade() -> None:
    op.drop_column('api_keys', 'last_used_at')
