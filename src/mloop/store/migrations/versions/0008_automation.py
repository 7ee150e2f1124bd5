"""Automation: decisions, the events that fired them (once each), per-pipeline leases.

Revision ID: 0008_automation
Revises: 0007_pipelines
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_automation"
down_revision = "0007_pipelines"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "automation_state",
        sa.Column("pipeline", sa.String(200), nullable=False),
        sa.Column("lease", sa.String(32)),
        sa.Column("lease_holder", sa.String(300)),
        sa.Column("lease_until", sa.BigInteger()),
        sa.Column("last_run_at", sa.BigInteger()),
        sa.Column("last_skip", sa.Text()),
        sa.PrimaryKeyConstraint("pipeline", name="pk_automation_state"),
    )
    op.create_table(
        "automation_decisions",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("pipeline", sa.String(200), nullable=False),
        sa.Column("trigger", sa.Text(), nullable=False),
        sa.Column("decision", sa.String(20), nullable=False),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("fired_at", sa.BigInteger(), nullable=False),
        sa.Column("finished_at", sa.BigInteger()),
        sa.Column("pipeline_run_id", sa.String(32)),
        sa.Column("model_uri", sa.String(300)),
        sa.Column("registered", sa.String(300)),
        sa.Column("holder", sa.String(300)),
        sa.PrimaryKeyConstraint("id", name="pk_automation_decisions"),
    )
    op.create_index("ix_automation_decisions_pipeline_fired_at", "automation_decisions",
                    ["pipeline", "fired_at"])
    op.create_index("ix_automation_decisions_fired_at", "automation_decisions", ["fired_at"])
    op.create_table(
        "automation_events",
        sa.Column("pipeline", sa.String(200), nullable=False),
        sa.Column("trigger", sa.String(300), nullable=False),
        sa.Column("event", sa.String(300), nullable=False),
        sa.Column("decision_id", sa.String(32), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("pipeline", "trigger", "event", name="pk_automation_events"),
    )


def downgrade() -> None:
    op.drop_table("automation_events")
    op.drop_table("automation_decisions")
    op.drop_table("automation_state")
