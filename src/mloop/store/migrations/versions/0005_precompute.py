"""Precomputed predictions: batches and their rows, keyed by entity and model version.

Revision ID: 0005_precompute
Revises: 0004_evaluations
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_precompute"
down_revision = "0004_evaluations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "precompute_batches",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("table_name", sa.String(200), nullable=False),
        sa.Column("model_uri", sa.String(300), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("started_at", sa.BigInteger(), nullable=False),
        sa.Column("finished_at", sa.BigInteger()),
        sa.PrimaryKeyConstraint("id", name="pk_precompute_batches"),
    )
    op.create_index("ix_precompute_batches_table_name", "precompute_batches", ["table_name"])
    op.create_table(
        "precomputed",
        sa.Column("table_name", sa.String(200), nullable=False),
        sa.Column("model_uri", sa.String(300), nullable=False),
        sa.Column("key", sa.String(300), nullable=False),
        sa.Column("batch_id", sa.String(32), nullable=False),
        sa.Column("prediction", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("table_name", "model_uri", "key", name="pk_precomputed"),
    )


def downgrade() -> None:
    op.drop_table("precomputed")
    op.drop_table("precompute_batches")
