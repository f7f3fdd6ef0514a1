"""lines.learn_flagged_until: an operator-vouched period whose flagged windows are buffered

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 04:35:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ALTER TABLE on both databases, never a batch copy: on SQLite a batch migration drops and
# recreates `lines`, and with foreign keys on, dropping it cascades to every buffered window and
# model version (tests/app/test_migrations.py). DROP COLUMN needs SQLite >= 3.35 (2021).


def upgrade() -> None:
    op.add_column('lines', sa.Column('learn_flagged_until', sa.DateTime(timezone=True),
                                     nullable=True))


def downgrade() -> None:
    op.drop_column('lines', 'learn_flagged_until')
