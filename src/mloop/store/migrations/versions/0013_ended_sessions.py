"""Browser sessions ended by /logout, kept in the store so that every worker of the server
and every restart refuse them until they would have expired.

Revision ID: 0013_ended_sessions
Revises: 0012_feedback_by
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_ended_sessions"
down_revision = "0012_feedback_by"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ended_sessions",
        sa.Column("nonce", sa.String(32), primary_key=True),
        sa.Column("token_id", sa.String(12), nullable=False),
        sa.Column("expires_ms", sa.BigInteger, nullable=False),
        sa.Column("ended_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_ended_sessions_expires_ms", "ended_sessions", ["expires_ms"])


def downgrade() -> None:
    op.drop_index("ix_ended_sessions_expires_ms", table_name="ended_sessions")
    op.drop_table("ended_sessions")
