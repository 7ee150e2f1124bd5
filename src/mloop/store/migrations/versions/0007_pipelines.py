"""Pipelines: runs, their steps, and the step cache.

Revision ID: 0007_pipelines
Revises: 0006_monitoring
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_pipelines"
down_revision = "0006_monitoring"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pipeline_runs",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("pipeline", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("executor", sa.String(20), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("inputs", sa.Text(), nullable=False),
        sa.Column("trigger", sa.Text()),
        sa.Column("run_id", sa.String(32)),
        sa.Column("error", sa.Text()),
        sa.Column("started_at", sa.BigInteger(), nullable=False),
        sa.Column("finished_at", sa.BigInteger()),
        sa.PrimaryKeyConstraint("id", name="pk_pipeline_runs"),
    )
    op.create_index("ix_pipeline_runs_pipeline", "pipeline_runs", ["pipeline"])
    op.create_table(
        "pipeline_steps",
        sa.Column("pipeline_run_id", sa.String(32), nullable=False),
        sa.Column("step", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("cache_key", sa.String(64)),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(32)),
        sa.Column("seconds", sa.Double()),
        sa.Column("error", sa.Text()),
        sa.Column("log", sa.String(64)),
        sa.Column("outputs", sa.Text()),
        sa.Column("started_at", sa.BigInteger()),
        sa.Column("finished_at", sa.BigInteger()),
        sa.PrimaryKeyConstraint("pipeline_run_id", "step", name="pk_pipeline_steps"),
    )
    op.create_table(
        "pipeline_cache",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("pipeline", sa.String(200), nullable=False),
        sa.Column("step", sa.String(200), nullable=False),
        sa.Column("outputs", sa.Text(), nullable=False),
        sa.Column("run_id", sa.String(32)),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_pipeline_cache"),
    )


def downgrade() -> None:
    op.drop_table("pipeline_cache")
    op.drop_table("pipeline_steps")
    op.drop_table("pipeline_runs")
