"""Model registry: registered models, versions, aliases, tags and the audit log.

Revision ID: 0003_registry
Revises: 0002_data
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_registry"
down_revision = "0002_data"
branch_labels = None
depends_on = None

ID = sa.String(32)
DIGEST = sa.String(64)


def upgrade() -> None:
    op.create_table(
        "registered_models",
        sa.Column("id", ID, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text()),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_registered_models"),
        sa.UniqueConstraint("name", name="uq_registered_models_name"),
    )
    op.create_table(
        "model_versions",
        sa.Column("model_id", ID, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("run_id", ID),
        sa.Column("artifact_path", sa.String(1000), nullable=False),
        sa.Column("manifest", DIGEST, nullable=False),
        sa.Column("flavor", sa.String(50), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("description", sa.Text()),
        sa.Column("user", sa.String(200)),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("model_id", "version", name="pk_model_versions"),
        sa.ForeignKeyConstraint(["model_id"], ["registered_models.id"],
                                name="fk_model_versions_model_id_registered_models"),
    )
    op.create_index("ix_model_versions_run_id", "model_versions", ["run_id"])
    op.create_table(
        "model_aliases",
        sa.Column("model_id", ID, nullable=False),
        sa.Column("alias", sa.String(200), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("model_id", "alias", name="pk_model_aliases"),
        sa.ForeignKeyConstraint(["model_id"], ["registered_models.id"],
                                name="fk_model_aliases_model_id_registered_models"),
    )
    op.create_table(
        "model_tags",
        sa.Column("model_id", ID, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("model_id", "version", "key", name="pk_model_tags"),
        sa.ForeignKeyConstraint(["model_id"], ["registered_models.id"],
                                name="fk_model_tags_model_id_registered_models"),
    )
    op.create_table(
        "model_events",
        sa.Column("id", ID, nullable=False),
        sa.Column("model_id", ID, nullable=False),
        sa.Column("version", sa.BigInteger()),
        sa.Column("action", sa.String(50), nullable=False),
        sa.Column("user", sa.String(200)),
        sa.Column("message", sa.Text()),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_model_events"),
        sa.ForeignKeyConstraint(["model_id"], ["registered_models.id"],
                                name="fk_model_events_model_id_registered_models"),
    )
    op.create_index("ix_model_events_model_id", "model_events", ["model_id"])


def downgrade() -> None:
    for table in ("model_events", "model_tags", "model_aliases", "model_versions",
                  "registered_models"):
        op.drop_table(table)
