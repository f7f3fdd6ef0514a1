"""model_versions.pruned_at: an old version's model and trained ids dropped, its record kept

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 06:30:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ALTER TABLE, never a batch copy (see 0002). Versions from before keep their models:
# the first retrain after the upgrade prunes those beyond LIFELINE_KEEP_VERSIONS.


def upgrade() -> None:
    op.add_column('model_versions', sa.Column('pruned_at', sa.DateTime(timezone=True),
                                              nullable=True))


def downgrade() -> None:
    op.drop_column('model_versions', 'pruned_at')
