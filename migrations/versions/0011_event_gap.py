"""lines.event_gap_s: how long a line may look normal inside one anomaly event (an off-delay)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 09:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTER TABLE, never a batch copy (see 0002). Existing lines take the new default:
    # it changes only how their next anomalous windows are grouped into events.
    op.add_column('lines', sa.Column('event_gap_s', sa.Integer(), nullable=False,
                                     server_default='60'))


def downgrade() -> None:
    op.drop_column('lines', 'event_gap_s')
