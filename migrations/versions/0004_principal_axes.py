"""lines.principal_axes: whether the line's models judge it on its sensors' principal axes

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 11:15:00
"""
import io
from collections.abc import Sequence

import sqlalchemy as sa
import torch
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ALTER TABLE, never a batch copy of `lines` (see 0002). New and model-less lines get true,
# the default since session 16. A line's first model fixes its axes for every retrain after it,
# so a line whose first model was trained on the sensors' own axes (before session 16) is set
# false here: read from that model's artifact, which carries an "axes" entry only if it has them.

_lines = sa.table('lines', sa.column('id', sa.String), sa.column('principal_axes', sa.Boolean))
_versions = sa.table('model_versions', sa.column('line_id', sa.String),
                     sa.column('version', sa.Integer), sa.column('artifact', sa.LargeBinary))


def _has_axes(artifact: bytes) -> bool:
    try:  # weights_only: the restricted unpickler models/serialization.py loads with
        return 'axes' in torch.load(io.BytesIO(artifact), map_location='cpu', weights_only=True)
    except Exception:  # unreadable here is unloadable for the service too: keep the default
        return True


def upgrade() -> None:
    op.add_column('lines', sa.Column('principal_axes', sa.Boolean(), nullable=False,
                                     server_default=sa.true()))
    conn = op.get_bind()
    first = sa.select(_versions.c.line_id, sa.func.min(_versions.c.version).label('version')
                      ).group_by(_versions.c.line_id).subquery()
    rows = conn.execute(sa.select(_versions.c.line_id, _versions.c.artifact).join(
        first, sa.and_(_versions.c.line_id == first.c.line_id,
                       _versions.c.version == first.c.version)))
    own_axes = [line_id for line_id, artifact in rows if not _has_axes(artifact)]
    if own_axes:
        conn.execute(_lines.update().where(_lines.c.id.in_(own_axes)).values(principal_axes=False))


def downgrade() -> None:
    op.drop_column('lines', 'principal_axes')
