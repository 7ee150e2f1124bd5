"""The team server's identities: API tokens and the audit log.

``api_tokens`` keeps what a server needs to check a bearer token (its id, the SHA-256 of
its secret, a role, an expiry, a revocation time), never the secret. ``audit_log`` keeps
who did which write through the server, when, and how it ended.

Revision ID: 0011_auth
Revises: 0010_deployments
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_auth"
down_revision = "0010_deployments"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(12), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("expires_ms", sa.BigInteger()),
        sa.Column("revoked_ms", sa.BigInteger()),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
    )
    op.create_index("ix_api_tokens_name", "api_tokens", ["name"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("token_id", sa.String(12)),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("action", sa.String(200), nullable=False),
        sa.Column("target", sa.String(300)),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_at_ms", "audit_log", ["at_ms"])
    op.create_index("ix_audit_log_actor_at_ms", "audit_log", ["actor", "at_ms"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_actor_at_ms", "audit_log")
    op.drop_index("ix_audit_log_at_ms", "audit_log")
    op.drop_table("audit_log")
    op.drop_index("ix_api_tokens_name", "api_tokens")
    op.drop_table("api_tokens")
