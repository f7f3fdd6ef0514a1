"""training_jobs.cancel_requested_at: an operator asked a running job to stop

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 22:20:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ALTER TABLE, never a batch copy (see 0002). Jobs from before were never asked: NULL.


def upgrade() -> None:
    op.add_column('training_jobs', sa.Column('cancel_requested_at', sa.DateTime(timezone=True),
                                             nullable=True))


def downgrade() -> None:
    op.drop_column('training_jobs', 'cancel_requested_at')
