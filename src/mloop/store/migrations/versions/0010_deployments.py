"""Deployments: named endpoints, their revisions, events, controller leases and traffic.

A deployment carries traffic from one model version to another by a strategy (replace,
canary, A/B, bandit, shadow, blue/green). Replicas of ``mloop serve`` sharing a store
follow its ``serial``; one controller at a time holds its lease; every replica's
predictions are indexed in ``deployment_traffic`` so the analysis sees all of them, and on
a shared store their prediction log segments are listed in ``prediction_segments`` (the
bytes in the object store) so monitoring on any host reads every replica's predictions.

Revision ID: 0010_deployments
Revises: 0009_liveness
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_deployments"
down_revision = "0009_liveness"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("current_revision", sa.Integer()),
        sa.Column("serial", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_deployments"),
    )
    op.create_table(
        "deployment_revisions",
        sa.Column("deployment", sa.String(200), sa.ForeignKey(
            "deployments.name", name="fk_deployment_revisions_deployment_deployments"),
            nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("strategy", sa.String(16), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("arms", sa.Text(), nullable=False),
        sa.Column("policy", sa.Text(), nullable=False),
        sa.Column("fallback", sa.Text()),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("rollback_of", sa.Integer()),
        sa.Column("rollback_target", sa.Text()),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("deployment", "revision", name="pk_deployment_revisions"),
    )
    op.create_table(
        "deployment_events",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("deployment", sa.String(200), sa.ForeignKey(
            "deployments.name", name="fk_deployment_events_deployment_deployments"),
            nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("initiated_by", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("analysis", sa.Text()),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_deployment_events"),
    )
    op.create_index("ix_deployment_events_deployment_created_at", "deployment_events",
                    ["deployment", "created_at"])
    op.create_table(
        "deployment_leases",
        sa.Column("deployment", sa.String(200), nullable=False),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("acquired_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("deployment", name="pk_deployment_leases"),
    )
    op.create_table(
        "deployment_traffic",
        sa.Column("request_id", sa.String(32), nullable=False),
        sa.Column("row", sa.Integer(), nullable=False),
        sa.Column("arm", sa.String(100), nullable=False),
        sa.Column("deployment", sa.String(200), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(300), nullable=False),
        sa.Column("outcome", sa.String(12), nullable=False),
        sa.Column("prediction", sa.Text()),
        sa.Column("latency_ms", sa.Double()),
        sa.Column("time_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("request_id", "row", "arm", name="pk_deployment_traffic"),
    )
    op.create_index("ix_deployment_traffic_deployment_revision", "deployment_traffic",
                    ["deployment", "revision", "time_ms"])
    op.create_table(
        "prediction_segments",
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("written_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("model", "version", "name", name="pk_prediction_segments"),
    )
    op.create_index("ix_prediction_segments_written_at", "prediction_segments",
                    ["written_at"])


def downgrade() -> None:
    op.drop_index("ix_prediction_segments_written_at", "prediction_segments")
    op.drop_table("prediction_segments")
    op.drop_index("ix_deployment_traffic_deployment_revision", "deployment_traffic")
    op.drop_table("deployment_traffic")
    op.drop_table("deployment_leases")
    op.drop_index("ix_deployment_events_deployment_created_at", "deployment_events")
    op.drop_table("deployment_events")
    op.drop_table("deployment_revisions")
    op.drop_table("deployments")
