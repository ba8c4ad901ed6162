"""change_events.queued_at: alerts for an event are queued exactly once, even after a crash

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import claims_db.models

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("change_events", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("queued_at", claims_db.models.UTCDateTime(timezone=True), nullable=True)
        )
    # Events stored before this revision were queued (or deliberately not) by the old code.
    op.execute("UPDATE change_events SET queued_at = detected_at")


def downgrade() -> None:
    with op.batch_alter_table("change_events", schema=None) as batch_op:
        batch_op.drop_column("queued_at")
