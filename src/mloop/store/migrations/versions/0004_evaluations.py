"""Evaluations: each test of a model, its decision and its stored report.

Revision ID: 0004_evaluations
Revises: 0003_registry
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_evaluations"
down_revision = "0003_registry"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "evaluations",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("model_uri", sa.String(300), nullable=False),
        sa.Column("run_id", sa.String(32)),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("suite", sa.String(200), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("report", sa.String(64), nullable=False),
        sa.Column("user", sa.String(200)),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_evaluations"),
    )
    op.create_index("ix_evaluations_model_uri", "evaluations", ["model_uri"])


def downgrade() -> None:
    op.drop_table("evaluations")
