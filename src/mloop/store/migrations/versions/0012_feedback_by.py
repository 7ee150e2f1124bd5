"""Feedback: who gave each label (a person labelling in the UI, a caller of the server).

``labelled_by`` is empty for labels sent before it existed and for labels whose sender is
not known (a client of ``mloop serve`` without a token).

Revision ID: 0012_feedback_by
Revises: 0011_auth
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_feedback_by"
down_revision = "0011_auth"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("feedback", sa.Column("labelled_by", sa.String(200)))


def downgrade() -> None:
    with op.batch_alter_table("feedback") as batch:
        batch.drop_column("labelled_by")
