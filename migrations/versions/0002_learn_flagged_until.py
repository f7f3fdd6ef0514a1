"""lines.learn_flagged_until: an operator-vouched period whose flagged windows are buffered

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 04:50:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('lines', schema=None) as batch_op:
        batch_op.add_column(sa.Column('learn_flagged_until', sa.DateTime(timezone=True),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('lines', schema=None) as batch_op:
        batch_op.drop_column('learn_flagged_until')
