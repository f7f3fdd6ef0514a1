"""anomaly_events: who acknowledged an event, when, and the operator's verdict on it

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 00:50:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ALTER TABLE, never a batch copy (see 0002). Events from before are unacknowledged.
_COLUMNS = (
    sa.Column('acknowledged_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('acknowledged_by', sa.String(length=120), nullable=True),
    sa.Column('verdict', sa.String(length=16), nullable=True),
    sa.Column('note', sa.String(length=500), nullable=True),
)


def upgrade() -> None:
    for column in _COLUMNS:
        op.add_column('anomaly_events', column)


def downgrade() -> None:
    for column in reversed(_COLUMNS):
        op.drop_column('anomaly_events', column.name)
