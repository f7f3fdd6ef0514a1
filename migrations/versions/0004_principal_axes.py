"""lines.principal_axes: whether the line's models judge it on its sensors' principal axes

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 11:15:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ALTER TABLE, never a batch copy of `lines` (see 0002). Existing lines get true, the
# default since session 16; a line whose first model was trained before keeps that model's
# own axes through its retrains whatever the column says (the axes are fixed by the first model).


def upgrade() -> None:
    op.add_column('lines', sa.Column('principal_axes', sa.Boolean(), nullable=False,
                                     server_default=sa.true()))


def downgrade() -> None:
    op.drop_column('lines', 'principal_axes')
