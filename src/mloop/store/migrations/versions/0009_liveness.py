"""Liveness: who owns a running run or pipeline run, and when it last said it was alive.

A process that dies by SIGKILL (or with its machine) cannot record how it ended; its
runs would read RUNNING forever. Each row now names its owner (host, pid, a token of the
process's start) and carries a heartbeat, so readers can tell a dead owner (see
``mloop.core.owner``). The partial index keeps "which runs are running" cheap however
many runs a store holds.

Revision ID: 0009_liveness
Revises: 0008_automation
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_liveness"
down_revision = "0008_automation"
branch_labels = None
depends_on = None

_OWNER = (("owner_host", sa.String(255)), ("owner_pid", sa.BigInteger()),
          ("owner_start", sa.String(100)), ("heartbeat_at", sa.BigInteger()))


def upgrade() -> None:
    for table in ("runs", "pipeline_runs"):
        for name, kind in _OWNER:
            op.add_column(table, sa.Column(name, kind))
    op.create_index("ix_runs_running", "runs", ["status"],
                    sqlite_where=sa.text("status = 'RUNNING'"),
                    postgresql_where=sa.text("status = 'RUNNING'"))
    op.create_index("ix_pipeline_runs_running", "pipeline_runs", ["status"],
                    sqlite_where=sa.text("status = 'running'"),
                    postgresql_where=sa.text("status = 'running'"))


def downgrade() -> None:
    op.drop_index("ix_pipeline_runs_running", "pipeline_runs")
    op.drop_index("ix_runs_running", "runs")
    for table in ("pipeline_runs", "runs"):
        with op.batch_alter_table(table) as batch:
            for name, _ in reversed(_OWNER):
                batch.drop_column(name)
